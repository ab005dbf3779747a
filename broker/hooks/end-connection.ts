import type { Writable } from 'node:stream'
import type { Client } from 'aedes'

type Disconnectable = Client & { version?: number | null; connected: boolean; broker: { emit(event: 'clientError', client: Client, error: Error): boolean }; disconnect(opts: { reasonCode: number }): void }

/**
 * Ends a connection for `error`: the one way the limits that watch a connection's
 * bytes (broker/limits/read-gate.ts, parser-guard.ts) and its outbound queue
 * (broker/flow/flow.ts) close a client. An MQTT 5 client with a session is told why
 * first: DISCONNECT with `reasonCode` [MQTT-3.14.2-1], the error reported as aedes'
 * `clientError` (the connection's event and reason, as an error path would), then
 * aedes closes. Anyone else (3.1.1 has no server DISCONNECT, a client still
 * connecting has no session) has the connection closed through aedes' error path.
 * A socket that takes no more bytes cannot carry the DISCONNECT and would hold the
 * close until aedes' drainTimeout: that one is closed at once too.
 */
export function endConnection(client: Client, error: Error, reasonCode: number): void {
  const c = client as Disconnectable
  if (c.version === 5 && c.connected && !c.closed && !(c.conn as unknown as Writable).writableNeedDrain) {
    c.broker.emit('clientError', c, error)
    c.disconnect({ reasonCode })
    return
  }
  c.emit('error', error)
}

import type { IncomingMessage } from 'node:http'
import type { Aedes } from 'aedes'
import { attachState } from '../capture/client-state.ts'
import type { Pipeline } from './pipeline.ts'

/** What the listeners (TCP, TLS, WebSocket) hand each new connection to. */
export type ConnectionHandler = (conn: Parameters<Aedes['handle']>[0], req?: IncomingMessage) => void

/**
 * A new connection, before any packet: aedes makes its client, capture gives it an
 * epoch (a limit refusing it is reported through that state, so it comes first),
 * then the limits check its address and guard its parser and reads.
 */
export function connectionHook(aedes: Aedes, p: Pipeline): ConnectionHandler {
  return (conn, req) => {
    // Nagle's algorithm holds small writes such as PUBACK for up to ~40 ms
    ;(conn as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true)
    const client = aedes.handle(conn, req)
    attachState(client, p.nextEpoch())
    const refused = p.limits.connection(client, req)
    // aedes' own error path closes the connection and raises connectionError
    if (refused) client.emit('error', refused)
  }
}

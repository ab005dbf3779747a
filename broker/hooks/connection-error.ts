import type { Client } from 'aedes'
import { connectionErrorReason, onConnectionError } from '../capture/events/connection-error.ts'
import { remoteAddressOf } from '../security/peer.ts'
import { safely, type Pipeline } from './pipeline.ts'

type ConnectError = Error & { errorCode?: number; returnCode?: number; reasonCode?: number }
export type ConnectionErrorStep = (client: Client, error: ConnectError) => void

/**
 * A connection error becomes an event only within its address's burst
 * (connectionErrorsPerIp a window); past it the error is counted into one summary per
 * address and reason (broker/security/connection-errors.ts), so anonymous sockets
 * cannot fill the event log. One decision per connection: aedes reports a CONNECT our
 * authenticate hook refused a second time.
 */
export function connectionErrorStep(p: Pipeline): ConnectionErrorStep {
  const admitted = new WeakMap<Client, boolean>()
  return safely(p.log, 'connectionError', (client: Client, error: ConnectError) => {
    let ok = admitted.get(client)
    if (ok === undefined) {
      const reason = connectionErrorReason(error)
      ok = p.connectionErrors.admit(remoteAddressOf(client.conn, client.req), reason)
      if (!ok && reason === 'not-authorized') p.capture.authFailures++
      admitted.set(client, ok)
    }
    if (ok) onConnectionError(p.capture, client, error)
  })
}

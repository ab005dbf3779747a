import type { IncomingMessage } from 'node:http'
import type { Aedes } from 'aedes'
import { attachState } from '../capture/client-state.ts'
import type { Pipeline } from './pipeline.ts'

/** What the listeners (TCP, TLS, WebSocket) hand each new connection to. */
export type ConnectionHandler = (conn: Parameters<Aedes['handle']>[0], req?: IncomingMessage) => void

/**
 * A new connection, before any packet: the limits check its address's connect rate,
 * aedes makes its client, capture gives it an epoch, then the limits guard its parser
 * and reads.
 */
export function connectionHook(aedes: Aedes, p: Pipeline): ConnectionHandler {
  return (conn, req) => {
    // Nagle's algorithm holds small writes such as PUBACK for up to ~40 ms
    ;(conn as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true)
    const overRate = p.limits.overRate(conn, req)
    if (overRate !== null) {
      // closed before aedes sees it: nothing read, no client made; counted and summarised
      conn.destroy()
      p.connectionErrors.rateLimited(overRate)
      return
    }
    const client = aedes.handle(conn, req)
    attachState(client, p.nextEpoch())
    p.limits.connection(client)
  }
}

import type { Aedes, Client, PublishPacket } from 'aedes'
import type { Logger } from '../../common/logger.ts'
import type { Capture } from './capture.ts'
import { attachState, noteReason, stateOf } from './client-state.ts'
import { onConnackSent } from './events/client-connected.ts'
import { onClientClosing } from './events/client-disconnecting.ts'
import { onClientDisconnect } from './events/client-disconnected.ts'
import { onClientError } from './events/client-error.ts'
import { onConnectionError } from './events/connection-error.ts'
import { onKeepaliveTimeout } from './events/keepalive-timeout.ts'
import { capturePublish } from './events/published.ts'
import { onAcknowledged, trackOutgoingPublishes } from './events/delivered.ts'
import { onSubscribe } from './events/subscribed.ts'
import { onUnsubscribe } from './events/unsubscribed.ts'

type Callback = (error?: Error | null) => void
type Authorize = (client: Client | null, packet: PublishPacket, done: Callback) => void

export interface Decisions {
  /** The ACL for publishes; the default refuses `$SYS/` like aedes' own. */
  authorizePublish: Authorize
}

/**
 * Connects aedes to the capture: one listener per lifecycle event, and the
 * wrappers around aedes internals that events cannot reach (the connection, its
 * close, client registration, authorization and acknowledgements). Must run
 * before `listen()` so the takeover listener on `$SYS/+/new/clients` runs before
 * aedes' own, which closes the old connection.
 */
export function wireCapture(aedes: Aedes, cap: Capture, log: Logger, nextEpoch: () => number, decisions: Decisions): { shuttingDown(): void } {
  let shuttingDown = false
  trackOutgoingPublishes()

  // Never throw from a listener: aedes would take the broker down with it.
  const safe = <A extends unknown[]>(name: string, fn: (...args: A) => void) => (...args: A): void => {
    try {
      fn(...args)
    } catch (err) {
      log.error({ err, event: name }, 'event capture failed')
    }
  }

  const handle = aedes.handle
  aedes.handle = (conn, req) => {
    // Nagle's algorithm holds small writes such as PUBACK for up to ~40 ms
    ;(conn as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true)
    const client = handle(conn, req)
    const state = attachState(client, nextEpoch())
    // Every way a connection ends runs Client#close, which first sets `closed`; some
    // callers hold a copy of close bound at construction, so watch the flag instead.
    let closed = client.closed
    Object.defineProperty(client, 'closed', {
      configurable: true,
      enumerable: true,
      get: () => closed,
      set: (value: boolean) => {
        const starting = value && !closed
        closed = value
        if (!starting) return
        if (shuttingDown) noteReason(state, 'shutdown')
        safe('clientDisconnecting', onClientClosing)(cap, client)
      },
    })
    return client
  }

  const internals = aedes as Aedes & {
    registerClient(client: Client): void
    clients: Record<string, Client>
    mq: { on(topic: string, fn: (packet: { topic: string; payload: Buffer }, done: () => void) => void): void }
  }
  const register = internals.registerClient
  internals.registerClient = function registerClient(client) {
    // [MQTT-3.1.4-2]: the same client id again closes the existing connection
    const old = internals.clients[client.id]
    const oldState = old ? stateOf(old) : undefined
    if (oldState) noteReason(oldState, 'takeover')
    register.call(internals, client)
  }
  internals.mq.on('$SYS/+/new/clients', (packet, done) => {
    const from = packet.topic.split('/')[1]
    const existing = internals.clients[packet.payload.toString()]
    const state = existing && from !== aedes.id ? stateOf(existing) : undefined
    if (state) noteReason(state, 'takeover')
    done()
  })

  const preConnect = aedes.preConnect
  aedes.preConnect = (client, packet, done) => {
    const state = stateOf(client)
    if (state) {
      state.keepalive = packet.keepalive
      if (packet.username !== undefined) state.username = packet.username
    }
    preConnect.call(aedes, client, packet, done)
  }

  const authenticate = aedes.authenticate
  aedes.authenticate = (client, username, password, done) => {
    authenticate.call(aedes, client, username, password, (err, ok) => {
      if (err || !ok) {
        const refusal = err ?? Object.assign(new Error('not authorized'), { returnCode: 5 })
        safe('connectionError', onConnectionError)(cap, client, Object.assign(refusal, { errorCode: refusal.returnCode ?? 5 }))
      }
      done(err, ok)
    })
  }

  aedes.authorizePublish = (client, packet, done) => {
    decisions.authorizePublish(client, packet, (err) => {
      if (err) {
        const state = client ? stateOf(client) : undefined
        if (state) noteReason(state, 'not-authorized', err)
        done(err)
        return
      }
      try {
        capturePublish(cap, client, packet, done)
      } catch (error) {
        log.error({ err: error }, 'publish capture failed')
        done(error as Error)
      }
    })
  }

  aedes.on('connackSent', safe('clientConnected', (connack: { returnCode?: number }, client: Client) => {
    if (connack.returnCode === 0) onConnackSent(cap, client)
  }))
  aedes.on('clientDisconnect', safe('clientDisconnected', (client: Client) => onClientDisconnect(cap, client)))
  aedes.on('clientError', safe('clientError', (client: Client, err: Error) => onClientError(cap, client, err)))
  aedes.on('connectionError', safe('connectionError', (client: Client, err: Error) => onConnectionError(cap, client, err)))
  aedes.on('keepaliveTimeout', safe('keepaliveTimeout', (client: Client) => onKeepaliveTimeout(cap, client)))
  aedes.on('subscribe', safe('subscribed', (subs, client: Client) => onSubscribe(cap, subs, client)))
  aedes.on('unsubscribe', safe('unsubscribed', (topics: string[], client: Client) => onUnsubscribe(cap, topics, client)))

  return {
    shuttingDown() {
      shuttingDown = true
    },
  }
}

/** Acknowledgements pass through the persistence (aedes lib/handlers/puback.js); set up after listen(). */
export function wireDelivered(aedes: Aedes, cap: Capture, log: Logger): void {
  const persistence = (aedes as Aedes & { persistence: { outgoingClearMessageId(client: Client, packet: { cmd: string; messageId?: number }): Promise<unknown> } }).persistence
  const clear = persistence.outgoingClearMessageId.bind(persistence)
  persistence.outgoingClearMessageId = (client, packet) => {
    try {
      onAcknowledged(cap, client, packet)
    } catch (err) {
      log.error({ err }, 'delivered capture failed')
    }
    return clear(client, packet)
  }
}

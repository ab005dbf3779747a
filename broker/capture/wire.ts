import type { Aedes, Client, PublishPacket } from 'aedes'
import type { Logger } from '../../common/logger.ts'
import type { ConnectionErrorLog } from '../security/connection-errors.ts'
import { remoteAddressOf } from '../security/peer.ts'
import type { Security } from '../security/security.ts'
import type { Capture } from './capture.ts'
import { attachState, noteReason, stateOf } from './client-state.ts'
import { onConnackSent } from './events/client-connected.ts'
import { onClientClosing } from './events/client-disconnecting.ts'
import { onClientDisconnect } from './events/client-disconnected.ts'
import { onClientError, onPublishRefused } from './events/client-error.ts'
import { connectionErrorReason, onConnectionError } from './events/connection-error.ts'
import { onKeepaliveTimeout } from './events/keepalive-timeout.ts'
import { capturePublish } from './events/published.ts'
import { onAcknowledged, trackOutgoingPublishes } from './events/delivered.ts'
import { onSubscribe } from './events/subscribed.ts'
import { onUnsubscribe } from './events/unsubscribed.ts'

type Callback = (error?: Error | null) => void

/** The only decisions the broker makes: who may connect, publish, subscribe and receive. */
export type Decisions = Pick<Security, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>

/**
 * Connects aedes to the capture: one listener per lifecycle event, and the
 * wrappers around aedes internals that events cannot reach (the connection, its
 * close, client registration, authorization and acknowledgements). Must run
 * before `listen()` so the takeover listener on `$SYS/+/new/clients` runs before
 * aedes' own, which closes the old connection.
 */
export interface WireOptions {
  /**
   * Forward a QoS 1 message (offline queues, retained store, the shared emitter)
   * before its PUBACK rather than after, as aedes does. With Redis persistence that
   * makes an acknowledged message reach the other brokers even if this one dies
   * right after acknowledging it, at one more Redis round trip before the PUBACK.
   */
  forwardQos1BeforeAck?: boolean
  /** Past a per-address burst, connection errors are counted into summaries instead of captured each. */
  connectionErrors?: Pick<ConnectionErrorLog, 'admit'>
}

export function wireCapture(aedes: Aedes, cap: Capture, log: Logger, nextEpoch: () => number, decisions: Decisions, options: WireOptions = {}): { shuttingDown(): void } {
  let shuttingDown = false
  trackOutgoingPublishes()

  // Never throw from a listener: aedes would take the broker down with it.
  const safe = <A extends unknown[]>(name: string, fn: (...args: A) => void) => (...args: A): void => {
    try {
      fn(...args)
    } catch (err) {
      // every listener's arguments include the aedes client; its id lets the line be followed
      const clientId = args.find((a): a is Client => typeof a === 'object' && a !== null && 'id' in a && 'conn' in a)?.id
      log.error({ err, event: name, clientId }, 'event capture failed')
    }
  }
  const clientDisconnecting = safe('clientDisconnecting', onClientClosing)
  // one decision per connection: aedes reports a refused CONNECT again after our authenticate did
  const admitted = new WeakMap<Client, boolean>()
  const connectionError = safe('connectionError', (c: Capture, client: Client, error: Error & { errorCode?: number; returnCode?: number }) => {
    const gate = options.connectionErrors
    let ok = gate ? admitted.get(client) : true
    if (ok === undefined && gate) {
      const reason = connectionErrorReason(error)
      ok = gate.admit(remoteAddressOf(client.conn, client.req), reason)
      if (!ok && reason === 'not-authorized') c.authFailures++
      admitted.set(client, ok)
    }
    if (ok) onConnectionError(c, client, error)
  })
  const publishRefused = safe('clientError', onPublishRefused)

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
        clientDisconnecting(cap, client)
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

  aedes.authenticate = (client, username, password, done) => {
    decisions.authenticate(client, username, password).then(
      (result) => {
        if (result.ok) {
          const state = stateOf(client)
          if (state && result.username !== undefined) state.username = result.username
          done(null, true)
          return
        }
        // never the password: the error names what was wrong, not what was sent
        connectionError(cap, client, result.error)
        done(result.error, false)
      },
      (err: unknown) => {
        log.error({ err, clientId: client.id }, 'authentication failed unexpectedly; refusing the client')
        done(Object.assign(new Error('server unavailable'), { returnCode: 3 }), false)
      },
    )
  }

  // Packets aedes' publish step must let go: refused ones (acknowledged and dropped;
  // aedes would close the connection) and QoS 1 ones already forwarded before their
  // PUBACK (WireOptions).
  const handled = new WeakSet<PublishPacket>()
  aedes.authorizePublish = (client, packet, done: Callback) => {
    const denied = decisions.authorizePublish(client, packet.topic)
    if (denied) {
      if (!client) return done(denied)
      publishRefused(cap, client, packet.topic, denied)
      handled.add(packet)
      return done(null)
    }
    try {
      if (options.forwardQos1BeforeAck && client && packet.qos === 1) {
        capturePublish(cap, client, packet, (err) => {
          if (err) return done(err)
          publish.call(aedes, packet, client, (error?: Error | null) => {
            if (!error) handled.add(packet)
            done(error)
          })
        })
      } else {
        capturePublish(cap, client, packet, done)
      }
    } catch (error) {
      log.error({ err: error, clientId: client?.id, topic: packet.topic }, 'publish capture failed')
      done(error as Error)
    }
  }
  // aedes calls publish(packet, client, done) from its handlers; its typings show (packet, done)
  type PublishWithClient = (packet: PublishPacket, client: Client | Callback | null, done?: Callback) => void
  const publish = aedes.publish as unknown as PublishWithClient
  const publishUnlessRefused: PublishWithClient = function (this: Aedes, packet, client, done) {
    if (handled.has(packet)) {
      const callback = typeof client === 'function' ? client : done
      callback?.()
      return
    }
    publish.call(this, packet, client, done)
  }
  aedes.publish = publishUnlessRefused as unknown as Aedes['publish']

  aedes.authorizeSubscribe = (client, sub, done) => {
    // a null subscription is refused with return code 0x80, the others stand [MQTT-3.9.3-2]
    done(null, decisions.authorizeSubscribe(client, sub.topic) ? null : sub)
  }
  const forward = decisions.authorizeForward
  if (forward) aedes.authorizeForward = (client, packet) => (forward(client, packet.topic) ? packet : null)

  // a v5 CONNACK carries reasonCode, a 3.1/3.1.1 one returnCode (aedes lib/handlers/connect.js)
  aedes.on('connackSent', safe('clientConnected', (connack: { returnCode?: number; reasonCode?: number }, client: Client) => {
    if ((connack.reasonCode ?? connack.returnCode) === 0) onConnackSent(cap, client)
  }))
  aedes.on('clientDisconnect', safe('clientDisconnected', (client: Client) => onClientDisconnect(cap, client)))
  // aedes raises clientError for a client still connecting too: that is a connection error, through the same gate
  aedes.on('clientError', safe('clientError', (client: Client, err: Error) => (cap.state(client)?.connected === false ? connectionError(cap, client, err) : onClientError(cap, client, err))))
  aedes.on('connectionError', (client: Client, err: Error) => connectionError(cap, client, err))
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
      log.error({ err, clientId: client.id }, 'delivered capture failed')
    }
    return clear(client, packet)
  }
}

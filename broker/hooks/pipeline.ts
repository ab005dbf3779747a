import type { Logger } from '../../common/logger.ts'
import type { Capture } from '../capture/capture.ts'
import type { Limits } from '../limits/limits.ts'
import type { ConnectionErrorLog } from '../security/connection-errors.ts'
import type { Security } from '../security/security.ts'
import type { StoredSessions } from '../cluster/stored-sessions.ts'
import type { Sessions } from '../flow/sessions.ts'

/** The only decisions the broker makes: who may connect, publish, subscribe and receive. */
export type Decisions = Pick<Security, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>

/**
 * What each hook's steps run on, in the order every hook takes them: limits (cheap
 * refusals, before anything is looked up), then security (credentials and the ACL),
 * then capture (only what passed becomes an event).
 */
export interface Pipeline {
  readonly limits: Limits
  readonly security: Decisions
  readonly capture: Capture
  /** Client ids with a stored session, for Session Present. */
  readonly sessions: StoredSessions
  /** Persistent sessions' offline time, for their queue bounds and expiry. */
  readonly offlineSessions: Pick<Sessions, 'connected' | 'disconnected'>
  readonly log: Logger
  /** Connection errors past a per-address burst are summarised, not captured each. */
  readonly connectionErrors: Pick<ConnectionErrorLog, 'admit' | 'rateLimited'>
  /** A new, larger session epoch for each connection. */
  readonly nextEpoch: () => number
  /**
   * Forward a QoS 1 message (offline queues, retained store, the shared emitter)
   * before its PUBACK rather than after, as aedes does. With Redis persistence that
   * makes an acknowledged message reach the other brokers even if this one dies
   * right after acknowledging it, at one more Redis round trip before the PUBACK.
   */
  readonly forwardQos1BeforeAck: boolean
  /** MQTT 5 Server Keep Alive (maxKeepAliveSeconds): the keepalive a v5 client asking for 0 or more is held to; 0: off. */
  readonly maxKeepAliveSeconds: number
  /** True once the broker is closing: a connection ending now ends for `shutdown`. */
  readonly shuttingDown: () => boolean
}

/** Never throw from a listener: aedes would take the broker down with it. */
export function safely<A extends unknown[]>(log: Logger, name: string, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A): void => {
    try {
      fn(...args)
    } catch (err) {
      // every listener's arguments include the aedes client; its id lets the line be followed
      const clientId = args.find((a): a is { id: string } => typeof a === 'object' && a !== null && 'id' in a && 'conn' in a)?.id
      log.error({ err, event: name, clientId }, 'event capture failed')
    }
  }
}

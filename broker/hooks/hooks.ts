import { Aedes, type AedesOptions, type Client, type PublishPacket } from 'aedes'
import { authenticateHook } from './authenticate.ts'
import { authorizeForwardHook } from './authorize-forward.ts'
import { authorizePublishHook } from './authorize-publish.ts'
import { authorizeSubscribeHook } from './authorize-subscribe.ts'
import { connectionHook, type ConnectionHandler } from './connection.ts'
import { connectionErrorStep } from './connection-error.ts'
import { observeEvents } from './events.ts'
import { preConnectHook } from './pre-connect.ts'
import { observeSessions, storedSessionHook } from './stored-session.ts'
import { publishPreviousWills } from './previous-wills.ts'
import type { Pipeline } from './pipeline.ts'
import { observeMqtt5 } from './mqtt5.ts'
import { Qos2Once } from '../flow/qos2-once.ts'

export type { ConnectionHandler } from './connection.ts'
export type { Decisions, Pipeline } from './pipeline.ts'

type Options = Omit<AedesOptions, 'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward' | 'published' | 'storedSession'>

/**
 * The one place the broker meets aedes: the hooks go in as aedes options (one file
 * each, listing its steps in order: limits, then security, then capture), its events
 * are observed (events.ts), and the listeners hand connections to `handle`. Where
 * aedes 2.0.0-beta.1 has no hook or event for what we need, a documented patch adds
 * one (patches/README.md); nothing here replaces an aedes method.
 */
export function createHookedAedes(options: Readonly<Options>, p: Pipeline): {
  aedes: Aedes
  handle: ConnectionHandler
  /** aedes' listen (the persistence set up), then the wills this broker id left before it started (previous-wills.ts). */
  listen(): Promise<void>
} {
  // aedes calls publish(packet, client, done) from its handlers; its typings show (packet, done)
  type PublishWithClient = (packet: PublishPacket, client: Client, done: (error?: Error | null) => void) => void
  const forward = authorizeForwardHook(p)
  const connectionError = connectionErrorStep(p)
  const aedes: Aedes = new Aedes({
    ...options,
    ...p.limits.aedesOptions,
    preConnect: preConnectHook(p),
    authenticate: authenticateHook(() => aedes, p, connectionError),
    authorizePublish: authorizePublishHook(() => (aedes.publish as unknown as PublishWithClient).bind(aedes), p, () => qos2),
    authorizeSubscribe: authorizeSubscribeHook(p),
    ...(forward ? { authorizeForward: forward } : {}),
    storedSession: storedSessionHook(p),
  })
  const qos2 = new Qos2Once(aedes)
  observeEvents(aedes, p, connectionError)
  observeSessions(aedes, p)
  observeMqtt5(aedes, p)
  const listen = async (): Promise<void> => {
    await aedes.listen()
    await publishPreviousWills(aedes, p)
  }
  return { aedes, handle: connectionHook(aedes, p), listen }
}

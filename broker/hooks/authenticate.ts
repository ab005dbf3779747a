import type { Aedes, AedesOptions } from 'aedes'
import { stateOf } from '../capture/client-state.ts'
import type { ConnectionErrorStep } from './connection-error.ts'
import type { Pipeline } from './pipeline.ts'

/**
 * Limits (client id rules, maxConnections), then security (credentials), then capture
 * (the username on the connection's state, or a connectionError for a refusal).
 */
export function authenticateHook(aedes: () => Aedes, p: Pipeline, connectionError: ConnectionErrorStep): NonNullable<AedesOptions['authenticate']> {
  return (client, username, password, done) => {
    // [MQTT-3.1.4-2]: the same client id again replaces the session's connection
    const takeover = aedes().clients[client.id] !== undefined
    const over = p.limits.authenticate(client, takeover)
    if (over) return done(over, false)
    p.security.authenticate(client, username, password).then(
      (result) => {
        if (result.ok) {
          const state = stateOf(client)
          if (state && result.username !== undefined) state.username = result.username
          done(null, true)
          return
        }
        // never the password: the error names what was wrong, not what was sent
        connectionError(client, result.error)
        done(result.error, false)
      },
      (err: unknown) => {
        p.log.error({ err, clientId: client.id }, 'authentication failed unexpectedly; refusing the client')
        done(Object.assign(new Error('server unavailable'), { returnCode: 3 as const }), false)
      },
    )
  }
}

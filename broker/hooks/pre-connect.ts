import type { AedesOptions } from 'aedes'
import { stateOf } from '../capture/client-state.ts'
import type { Pipeline } from './pipeline.ts'

/** CONNECT arrived, before aedes looks at it: limits note an empty client id, capture the CONNECT's fields. */
export function preConnectHook(p: Pipeline): NonNullable<AedesOptions['preConnect']> {
  return (client, packet, done) => {
    p.limits.connect(client, packet.clientId)
    const state = stateOf(client)
    if (state) {
      const limit = p.maxKeepAliveSeconds
      // as granted: aedes holds an MQTT 5 client to the Server Keep Alive [MQTT-3.2.2-21]
      state.keepalive = packet.protocolVersion === 5 && limit > 0 && (!packet.keepalive || packet.keepalive > limit) ? limit : packet.keepalive
      if (packet.username !== undefined) state.username = packet.username
      state.protocolVersion = packet.protocolVersion
      const userProperties = packet.properties?.userProperties
      if (userProperties) state.connectUserProperties = userProperties
    }
    done(null, true)
  }
}

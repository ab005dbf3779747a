import type { Client } from 'aedes'
import type { WireEventOf } from '../../../common/events.ts'
import type { Capture } from '../capture.ts'
import type { ClientState } from '../client-state.ts'

/**
 * aedes `connackSent` with return code 0: the session exists. Not `clientReady`,
 * which waits for stored messages to be sent: a PUBLISH read in that gap is
 * handled already, and its event must come after this one in seq order.
 */
export function onConnackSent(cap: Capture, client: Client): void {
  const state = cap.state(client)
  if (!state) return
  state.connected = true
  const event: WireEventOf<'clientConnected'> = {
    ...cap.fields(client, state, 'clientConnected'),
    type: 'clientConnected',
    clean: client.clean,
    keepalive: state.keepalive ?? 0,
    protocolVersion: client.version,
  }
  if (client.version === 5) event.properties = connectProperties(client, state)
  cap.emit(event)
}

/** The CONNECT properties that shape the session [MQTT-3.1.2.11], as aedes applied them. */
function connectProperties(client: Client, state: ClientState): NonNullable<WireEventOf<'clientConnected'>['properties']> {
  const properties: NonNullable<WireEventOf<'clientConnected'>['properties']> = {
    // granted, which may be less than asked (aedes sessionExpiryIntervalLimit) [MQTT-3.2.2.3.2]
    sessionExpiryInterval: client.sessionExpiryInterval,
    receiveMaximum: client.receiveMaximum,
  }
  if (client.maximumPacketSize !== undefined) properties.maximumPacketSize = client.maximumPacketSize
  if (state.connectUserProperties) properties.userProperties = state.connectUserProperties
  return properties
}

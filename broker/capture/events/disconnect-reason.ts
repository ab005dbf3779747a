import type { Client } from 'aedes'
import type { ClientState } from '../client-state.ts'

/**
 * The reason code of the MQTT 5 DISCONNECT that ends this connection: the client's
 * [MQTT-3.14.2-1], or the one aedes sent (takeover 0x8E, shutdown 0x8B, packet too
 * large 0x95, ...). Read once, as the connection starts closing; 3.1.1 has none.
 */
export function noteDisconnectReason(state: ClientState, client: Client): void {
  if (state.disconnect || client.version !== 5) return
  if (client.receivedDisconnectReasonCode !== undefined) state.disconnect = { reasonCode: client.receivedDisconnectReasonCode, reasonCodeFrom: 'client' }
  else if (client.disconnectReasonCode !== null) state.disconnect = { reasonCode: client.disconnectReasonCode, reasonCodeFrom: 'broker' }
}

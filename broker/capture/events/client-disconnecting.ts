import type { Client } from 'aedes'
import type { Capture } from '../capture.ts'
import { noteDisconnectReason } from './disconnect-reason.ts'

/**
 * aedes `clientClosing` (our patch): Client#close began, the one place every way of
 * ending a connection passes through, before aedes tears the session down.
 */
export function onClientClosing(cap: Capture, client: Client & { _disconnected?: boolean }): void {
  const state = cap.state(client)
  if (!state || !state.connected || state.disconnecting) return
  state.disconnecting = true
  noteDisconnectReason(state, client)
  // [MQTT-3.14.4-3]: a DISCONNECT packet sets _disconnected before the socket closes;
  // an MQTT 5 DISCONNECT 0x04 (publish my will) does not, but is one too
  if ((client._disconnected === true || state.disconnect?.reasonCodeFrom === 'client') && state.reason === undefined) state.reason = 'disconnect'
  state.reason ??= 'socket-closed'
  cap.emit({
    ...cap.fields(client, state, 'clientDisconnecting'),
    type: 'clientDisconnecting',
    reason: state.reason,
    ...(state.error ? { error: state.error } : {}),
    ...state.disconnect,
  })
}

import type { Client } from 'aedes'
import type { Capture } from '../capture.ts'
import { noteDisconnectReason } from './disconnect-reason.ts'

/** aedes `clientDisconnect`: the client is unregistered and its connection gone. */
export function onClientDisconnect(cap: Capture, client: Client): void {
  const state = cap.state(client)
  if (!state || !state.connected) return
  noteDisconnectReason(state, client)
  cap.emit({
    ...cap.fields(client, state, 'clientDisconnected'),
    type: 'clientDisconnected',
    reason: state.reason ?? 'socket-closed',
    ...(state.error ? { error: state.error } : {}),
    ...state.disconnect,
  })
}

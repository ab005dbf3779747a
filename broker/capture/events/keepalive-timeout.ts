import type { Client } from 'aedes'
import type { Capture } from '../capture.ts'
import { noteReason } from '../client-state.ts'

/** aedes `keepaliveTimeout`: nothing arrived within 1.5 × keepalive [MQTT-3.1.2-24]. */
export function onKeepaliveTimeout(cap: Capture, client: Client): void {
  const state = cap.state(client)
  if (!state) return
  noteReason(state, 'keepalive-timeout')
  cap.emit({ ...cap.fields(client, state, 'keepaliveTimeout'), type: 'keepaliveTimeout', keepalive: state.keepalive ?? 0 })
}

import type { Client } from 'aedes'
import type { Capture } from '../capture.ts'

/** aedes `clientReady`: CONNACK is sent and offline messages are delivered. */
export function onClientReady(cap: Capture, client: Client): void {
  const state = cap.state(client)
  if (!state) return
  state.connected = true
  cap.emit({
    ...cap.fields(client, state),
    type: 'clientConnected',
    clean: client.clean,
    keepalive: state.keepalive ?? 0,
    protocolVersion: client.version,
  })
}

import type { Client } from 'aedes'
import type { Capture } from '../capture.ts'

/**
 * aedes `connackSent` with return code 0: the session exists. Not `clientReady`,
 * which waits for stored messages to be sent: a PUBLISH read in that gap is
 * handled already, and its event must come after this one in seq order.
 */
export function onConnackSent(cap: Capture, client: Client): void {
  const state = cap.state(client)
  if (!state) return
  state.connected = true
  cap.emit({
    ...cap.fields(client, state, 'clientConnected'),
    type: 'clientConnected',
    clean: client.clean,
    keepalive: state.keepalive ?? 0,
    protocolVersion: client.version,
  })
}

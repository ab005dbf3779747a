import type { Client } from 'aedes'
import type { DisconnectReason } from '../../../common/event-types.ts'
import type { Capture } from '../capture.ts'
import { classifyError, errorInfo, noteReason } from '../client-state.ts'
import { onConnectionError } from './connection-error.ts'

/**
 * aedes `clientError`. aedes raises it for any client with an id, which includes one
 * still connecting; those have no session yet and are reported as connectionError.
 */
export function onClientError(cap: Capture, client: Client, error: Error): void {
  const state = cap.state(client)
  if (!state || state.refused || reported.has(error)) return
  if (!state.connected) {
    onConnectionError(cap, client, error)
    return
  }
  const reason = classifyError(error)
  noteReason(state, reason, error)
  // the keepaliveTimeout event already reports this one
  if (reason === 'keepalive-timeout') return
  cap.emit({ ...cap.fields(client, state, 'clientError'), type: 'clientError', error: errorInfo(error) })
}

/** Refusals captured by onPublishRefused, which aedes raises as clientError again for MQTT 5. */
const reported = new WeakSet<Error>()

/**
 * A publish refused while the connection stays: one the ACL refused (MQTT 3.1.1 cannot
 * tell the client [MQTT-3.3.5-2]: it is acknowledged per its QoS and dropped; MQTT 5
 * gets reason code 0x87), or an MQTT 5 one a limit refused with its own reason code
 * (0x90 topic over the limits, 0x99 payload not UTF-8).
 */
export function onPublishRefused(cap: Capture, client: Client, topic: string, error: Error, reason: DisconnectReason, reasonCode: number | undefined): void {
  const state = cap.state(client)
  if (!state) return
  reported.add(error)
  cap.emit({ ...cap.fields(client, state, 'clientError'), type: 'clientError', error: errorInfo(error), reason, topic, ...(reasonCode === undefined ? {} : { reasonCode }) })
}

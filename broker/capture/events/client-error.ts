import type { Client } from 'aedes'
import type { Capture } from '../capture.ts'
import { classifyError, errorInfo, noteReason } from '../client-state.ts'
import { onConnectionError } from './connection-error.ts'

/**
 * aedes `clientError`. aedes raises it for any client with an id, which includes one
 * still connecting; those have no session yet and are reported as connectionError.
 */
export function onClientError(cap: Capture, client: Client, error: Error): void {
  const state = cap.state(client)
  if (!state || state.refused) return
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

/**
 * A publish the ACL refused. MQTT 3.1.1 cannot tell the client [MQTT-3.3.5-2]: it is
 * acknowledged per its QoS and dropped, and recorded here. The connection stays.
 */
export function onPublishRefused(cap: Capture, client: Client, topic: string, error: Error): void {
  const state = cap.state(client)
  if (!state) return
  cap.emit({ ...cap.fields(client, state, 'clientError'), type: 'clientError', error: errorInfo(error), reason: 'not-authorized', topic })
}

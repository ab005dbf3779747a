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
  cap.emit({ ...cap.fields(client, state), type: 'clientError', error: errorInfo(error) })
}

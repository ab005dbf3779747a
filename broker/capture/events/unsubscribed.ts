import type { Client } from 'aedes'
import type { Capture } from '../capture.ts'

/**
 * aedes `unsubscribe`. aedes also emits it when a clean session closes and drops its
 * subscriptions; only an UNSUBSCRIBE from the client is a change the client made.
 */
export function onUnsubscribe(cap: Capture, topics: string[], client: Client): void {
  const state = cap.state(client)
  if (!state || client.closed) return
  cap.emit({ ...cap.fields(client, state, 'unsubscribed'), type: 'unsubscribed', topics: [...topics] })
}

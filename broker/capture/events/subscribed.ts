import type { Client, Subscription } from 'aedes'
import type { Capture } from '../capture.ts'

/** aedes `subscribe`: granted filters, plus refused ones with qos 128 [MQTT-3.9.3-2]. */
export function onSubscribe(cap: Capture, subscriptions: Subscription[], client: Client): void {
  const state = cap.state(client)
  if (!state) return
  cap.emit({
    ...cap.fields(client, state, 'subscribed'),
    type: 'subscribed',
    subscriptions: subscriptions.map((s) => ({ topic: s.topic, qos: s.qos })),
  })
}

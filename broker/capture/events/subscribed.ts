import type { Client, Subscription } from 'aedes'
import type { WireEventOf } from '../../../common/events.ts'
import type { Capture } from '../capture.ts'

type Granted = WireEventOf<'subscribed'>['subscriptions'][number]
/** What mqtt-packet decodes of an MQTT 5 subscription's options byte [MQTT-3.8.3.1]. */
type V5Subscription = Subscription & { nl?: boolean; rap?: boolean; rh?: number; subscriptionIdentifier?: number }

/** aedes `subscribe`: granted filters, plus refused ones with qos 128 or an MQTT 5 reason code [MQTT-3.9.3-2]. */
export function onSubscribe(cap: Capture, subscriptions: Subscription[], client: Client): void {
  const state = cap.state(client)
  if (!state) return
  const v5 = client.version === 5
  cap.emit({
    ...cap.fields(client, state, 'subscribed'),
    type: 'subscribed',
    subscriptions: subscriptions.map((s: V5Subscription) => {
      const granted: Granted = { topic: s.topic, qos: s.qos }
      if (!v5) return granted
      granted.noLocal = s.nl === true
      granted.retainAsPublished = s.rap === true
      granted.retainHandling = s.rh === 1 || s.rh === 2 ? s.rh : 0
      if (s.subscriptionIdentifier !== undefined) granted.subscriptionIdentifier = s.subscriptionIdentifier
      return granted
    }),
  })
}

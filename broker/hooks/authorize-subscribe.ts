import type { AedesOptions } from 'aedes'
import type { Pipeline } from './pipeline.ts'

/**
 * Limits (the filter's length and levels), then security (the ACL), then limits
 * again for maxSubscriptionsPerClient, which counts only what the ACL granted. A null
 * subscription is refused (0x80, MQTT 5 reason code per aedes) and the others of the
 * SUBSCRIBE stand [MQTT-3.9.3-2].
 */
export function authorizeSubscribeHook(p: Pipeline): NonNullable<AedesOptions['authorizeSubscribe']> {
  return (client, sub, done) => {
    if (!p.limits.subscribe(client, sub)) return done(null, null)
    if (p.security.authorizeSubscribe(client, sub.topic)) return done(null, null)
    if (!p.limits.admitSubscription(client, sub.topic)) return done(null, null)
    done(null, sub)
  }
}

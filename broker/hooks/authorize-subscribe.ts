import type { AedesOptions } from 'aedes'
import { REASON } from '../mqtt5/reason-codes.ts'
import type { Pipeline } from './pipeline.ts'

/**
 * Limits (the filter's length and levels), then security (the ACL), then limits
 * again for maxSubscriptionsPerClient, which counts only what the ACL granted. A
 * refused subscription gets its MQTT 5 reason code in the SUBACK (aedes patch
 * 006+reason-codes): 0x8F Topic Filter invalid, 0x87 Not authorized, 0x97 Quota
 * exceeded; a 3.1.1 client gets 0x80 for each [MQTT-3.9.3-2]. The others of the
 * SUBSCRIBE stand.
 */
export function authorizeSubscribeHook(p: Pipeline): NonNullable<AedesOptions['authorizeSubscribe']> {
  return (client, sub, done) => {
    if (!p.limits.subscribe(client, sub)) return done(null, REASON.TOPIC_FILTER_INVALID)
    if (p.security.authorizeSubscribe(client, sub.topic)) return done(null, REASON.NOT_AUTHORIZED)
    if (!p.limits.admitSubscription(client, sub.topic)) return done(null, REASON.QUOTA_EXCEEDED)
    done(null, sub)
  }
}

import type { AedesOptions } from 'aedes'
import type { Redis } from 'ioredis'

type SharedClaim = NonNullable<AedesOptions['sharedClaim']>

/**
 * How long a claim is kept. Every broker of the cluster gets a message through the
 * shared emitter within milliseconds of the others; a broker that lags longer than
 * this would find the claim gone and deliver the message a second time.
 */
const CLAIM_TTL_MS = 30_000

/**
 * One delivery per shared-subscription group across the brokers of a cluster
 * [MQTT-4.8.2]: each broker that holds members of the group and receives the message
 * tries `SET key NX`; the one that sets it delivers to one of its members (aedes
 * patch 002, lib/shared.js), the others drop it. The key is the message's origin
 * broker and counter (unique cluster-wide; the patch starts the counter from the
 * clock so a restarted broker does not reuse one) and the group.
 *
 * Cost: one Redis round trip per message per broker holding members of a matching
 * group, before that delivery; a key of ~100 bytes per message and group for
 * CLAIM_TTL_MS. The first broker to ask wins, which is usually the one the message
 * was published on, so members there get more of the group's messages.
 */
export function redisSharedClaim(redis: Redis, prefix: string, brokerId: string): SharedClaim {
  return (group, filter, packet, done) => {
    const origin = (packet as { brokerId?: string; brokerCounter?: number })
    const key = `${prefix}:share:${origin.brokerId ?? ''}:${origin.brokerCounter ?? ''}:${group}/${filter}`
    redis.set(key, brokerId, 'PX', CLAIM_TTL_MS, 'NX').then((set) => done(null, set === 'OK'), (err: Error) => done(err, false))
  }
}

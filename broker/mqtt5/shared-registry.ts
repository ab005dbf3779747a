import type { AedesOptions } from 'aedes'
import type { Redis } from 'ioredis'

type SharedRegistry = NonNullable<AedesOptions['sharedRegistry']>

/**
 * How often a broker renews its marks, and how long a mark outlives its last renewal
 * (three renewals). A broker that dies without removing its marks counts as holding
 * connected members for up to MARK_TTL_MS: meanwhile a message for a group whose only
 * connected members were there is queued for nobody.
 */
const RENEW_MS = 10_000
const MARK_TTL_MS = 3 * RENEW_MS

/**
 * Which brokers of a cluster hold connected members of each shared subscription
 * (aedes patch 008, lib/shared.js): a sorted set per group and filter, of broker ids
 * scored by when their mark lapses. A broker publishing a QoS 1/2 message that matches a
 * group with persistent members but no connected member on this broker queues it for an
 * offline member only when no other broker's mark is current; the claim of
 * shared-claim.ts then still makes it once per group, as a broker whose member connected
 * meanwhile delivers only if it claims first. The names of groups persistent members
 * joined are kept in a set, so a broker that starts later knows which groups to look
 * persistent members up under (running brokers tell each other through the emitter).
 *
 * Cost: one Redis round trip (ZRANGEBYSCORE) per message and matching group that has no
 * connected member on the publishing broker; a ZADD per group with members here every
 * RENEW_MS.
 */
export function redisSharedRegistry(redis: Redis, prefix: string, brokerId: string): SharedRegistry {
  const local = new Set<string>()
  const live = (key: string) => `${prefix}:share:live:${key}`
  const names = `${prefix}:share:names`
  const mark = (key: string) => redis.zadd(live(key), Date.now() + MARK_TTL_MS, brokerId)
  const fail = () => {} // a lost mark lapses or is renewed; never a crash
  const renew = setInterval(() => {
    for (const key of local) {
      mark(key).catch(fail)
      // dead brokers' lapsed marks
      redis.zremrangebyscore(live(key), '-inf', Date.now()).catch(fail)
    }
  }, RENEW_MS).unref()
  return {
    joined(group, filter) {
      const key = `${group}/${filter}`
      local.add(key)
      mark(key).catch(fail)
    },
    left(group, filter) {
      const key = `${group}/${filter}`
      local.delete(key)
      redis.zrem(live(key), brokerId).catch(fail)
    },
    named(group) {
      redis.sadd(names, group).catch(fail)
    },
    names: () => redis.smembers(names),
    async liveElsewhere(group, filter) {
      const key = live(`${group}/${filter}`)
      const brokers = await redis.zrangebyscore(key, Date.now(), '+inf')
      return brokers.some((id) => id !== brokerId)
    },
    close: () => clearInterval(renew),
  }
}

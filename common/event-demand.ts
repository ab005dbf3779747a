import type { Redis } from 'ioredis'
import type { EventType } from './event-types.ts'

/*
 * Which event types some worker has a handler for, told to the brokers through Redis.
 * Each worker keeps one member per handled type in a sorted set per type, scored with
 * the time its claim expires; a broker counts the unexpired members. A worker that
 * dies stops renewing and drops out within DEMAND_TTL_MS; one that closes removes
 * itself at once. Clocks of different hosts only need to agree within the TTL.
 */

/** How long one advertisement lasts without renewal. */
export const DEMAND_TTL_MS = 15_000
/** How often a worker renews its advertisement. */
export const DEMAND_RENEW_MS = 5_000

export function demandKey(prefix: string, type: EventType): string {
  return `${prefix}:demand:${type}`
}

/** Renews `types` for `member` until the returned close() is called (which withdraws them). */
export function advertiseDemand(redis: Redis, prefix: string, member: string, types: readonly EventType[]): { close(): Promise<void> } {
  const renew = () => {
    const until = Date.now() + DEMAND_TTL_MS
    // a failed renewal is retried on the next tick; the brokers keep the last answer meanwhile
    for (const type of types) {
      const key = demandKey(prefix, type)
      void redis.zadd(key, until, member).catch(() => {})
      // members of workers that died: nobody else removes them
      void redis.zremrangebyscore(key, '-inf', Date.now()).catch(() => {})
    }
  }
  renew()
  const timer = setInterval(renew, DEMAND_RENEW_MS)
  timer.unref()
  return {
    async close() {
      clearInterval(timer)
      await Promise.all(types.map((type) => redis.zrem(demandKey(prefix, type), member))).catch(() => {})
    },
  }
}

/** True when some worker's advertisement of `type` has not expired. */
export async function hasDemand(redis: Redis, prefix: string, type: EventType): Promise<boolean> {
  return (await redis.zcount(demandKey(prefix, type), Date.now(), '+inf')) > 0
}

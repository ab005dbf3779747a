import type { Redis } from 'ioredis'

/*
 * The capture store: one Redis hash per broker process, `<prefix>:capture:<tag>`,
 * field = flush number, value = the flush's events as a JSON array. A QoS 1/2
 * acknowledgement waits for one HSET of its flush (one round trip, no script); the
 * pump turns the entry into BullMQ jobs just behind it and deletes the field in the
 * same MULTI, so an entry is either still in the hash or its jobs are in their
 * queues, never neither and never both.
 *
 * A broker that dies leaves its hash behind. Every broker registers its tag in
 * `<prefix>:capture:brokers` and keeps `<prefix>:capture:alive:<tag>` alive; any
 * broker finding a registered tag whose alive key expired claims it and pumps its
 * entries (capture/recover.ts). The alive key lives in Redis (PX), so hosts' clocks
 * do not matter.
 */

/** How long a broker's alive key lasts without renewal. */
const ALIVE_TTL_MS = 10_000
/** How often a broker renews it (several renewals fit in one TTL: a busy event loop is not taken for dead). */
const ALIVE_RENEW_MS = 2_000

export function storeKey(prefix: string, tag: string): string {
  return `${prefix}:capture:${tag}`
}
export function brokersKey(prefix: string): string {
  return `${prefix}:capture:brokers`
}
export function aliveKey(prefix: string, tag: string): string {
  return `${prefix}:capture:alive:${tag}`
}

/** Registers `tag` and keeps it alive until close(). */
export async function registerStore(redis: Redis, prefix: string, tag: string): Promise<{ close(empty: boolean): Promise<void> }> {
  // registered again on every renewal: a broker taken for dead (its store emptied and
  // forgotten by another) that comes back must be found if it dies later
  const renew = () => redis.multi().set(aliveKey(prefix, tag), '1', 'PX', ALIVE_TTL_MS).sadd(brokersKey(prefix), tag).exec()
  await renew()
  // a failed renewal (Redis away) is retried on the next tick
  const timer = setInterval(() => void renew().catch(() => {}), ALIVE_RENEW_MS)
  timer.unref()
  return {
    /** Stops renewing; `empty`: every entry was pumped, so the tag is forgotten at once. */
    async close(empty) {
      clearInterval(timer)
      if (!empty) return
      await redis.multi().srem(brokersKey(prefix), tag).del(aliveKey(prefix, tag), storeKey(prefix, tag)).exec()
    },
  }
}

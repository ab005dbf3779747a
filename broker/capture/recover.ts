import type { Redis } from 'ioredis'
import type { WireEvent } from '../../common/events.ts'
import type { Logger } from '../../common/logger.ts'
import { aliveKey, brokersKey, storeKey } from './capture-store.ts'
import { encode } from './encode.ts'
import { Pump } from './pump.ts'

/** How often a broker looks for the capture stores of brokers that died. */
const RECOVER_EVERY_MS = 5_000
/** How long one broker holds the right to empty a dead broker's store. */
const CLAIM_MS = 60_000

export interface RecoveryOptions {
  redis: Redis
  prefix: string
  /** This broker's own tag: never taken over. */
  tag: string
  maxJobEvents: number
  maxJobBytes: number
  log: Logger
}

/*
 * Entries a broker stored (and so acknowledged) but did not pump before it died:
 * each becomes its jobs, with the ids that broker would have given them had it pumped
 * the flush alone (`<tag>.<flush>.<job>`), in the same MULTI that deletes it
 * (pump.ts). Run by every broker, at start and every few seconds; a claim key keeps
 * two brokers from emptying the same store at once.
 */
export function startRecovery(opts: RecoveryOptions): { close(): void } {
  let running: Promise<void> | undefined
  const tick = () => {
    running ??= sweep(opts)
      .catch((err: unknown) => opts.log.warn({ err }, 'capture recovery: looking for stores of dead brokers failed; trying again'))
      .finally(() => { running = undefined })
  }
  tick()
  const timer = setInterval(tick, RECOVER_EVERY_MS)
  timer.unref()
  return { close: () => clearInterval(timer) }
}

async function sweep(opts: RecoveryOptions): Promise<void> {
  const { redis, prefix } = opts
  for (const tag of await redis.smembers(brokersKey(prefix))) {
    if (tag === opts.tag || (await redis.exists(aliveKey(prefix, tag))) === 1) continue
    const claim = `${prefix}:capture:claim:${tag}`
    if ((await redis.set(claim, opts.tag, 'PX', CLAIM_MS, 'NX')) !== 'OK') continue
    const recovered = await recoverStore(opts, tag)
    if (recovered > 0) opts.log.warn({ broker: tag, events: recovered }, 'capture recovery: events a stopped broker had stored but not queued are queued now')
    await redis.multi().srem(brokersKey(prefix), tag).del(claim).exec()
  }
}

/** Pumps every entry of `tag`'s store, oldest flush first; returns the number of events. */
async function recoverStore(opts: RecoveryOptions, tag: string): Promise<number> {
  const key = storeKey(opts.prefix, tag)
  const fields = (await opts.redis.hkeys(key)).map(Number).sort((a, b) => a - b)
  if (fields.length === 0) return 0
  // the pump's transactions need a connection nothing else writes on
  const redis = opts.redis.duplicate()
  redis.on('error', () => {})
  const pump = new Pump({ redis, prefix: opts.prefix, tag, storeKey: key, maxJobEvents: opts.maxJobEvents, maxJobBytes: opts.maxJobBytes })
  let events = 0
  try {
    for (const n of fields) {
      const entry = await redis.hget(key, String(n))
      if (entry === null) continue
      const parsed = JSON.parse(entry) as WireEvent[]
      // retry = true: skipped if another broker's transaction already took it
      await pump.write([{ n, ...encode(parsed, opts.maxJobEvents, opts.maxJobBytes), stored: true }], true)
      events += parsed.length
    }
  } finally {
    await pump.close()
    redis.disconnect()
  }
  return events
}

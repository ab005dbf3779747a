import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Logger } from '../../common/logger.ts'
import { createRedis } from '../../common/redis.ts'
import { within } from '../../common/within.ts'
import { EventBatcher } from './batcher.ts'
import { registerStore, storeKey } from './capture-store.ts'
import { startRecovery } from './recover.ts'
import type { EventSink } from './sink.ts'
import { createThreadPump } from './pump-thread.ts'

/** The settings capture's writing side needs (a subset of BrokerConfig). */
export interface CaptureSettings {
  redisUrl: string
  brokerId: string
  prefix: string
  captureMaxJobEvents: number
  captureMaxJobBytes: number
  captureMaxBacklogEvents: number
  captureMaxBacklogBytes: number
}

/** Where captured events go, and how that stops. */
export interface CaptureOutput {
  readonly sink: EventSink
  /**
   * Writes what was captured to BullMQ within `flushTimeoutMs`, stops this writer's
   * store and recovery, closes its connections. Resolves whether everything captured
   * reached Redis; what did not is recovered by another broker when it was stored.
   */
  close(flushTimeoutMs: number): Promise<boolean>
}

/**
 * A capture store tag, unique per writer: job ids are `<tag>.<flush>.<job>`, so a
 * retried write makes the same ids. BullMQ refuses custom job ids with one or more
 * than two ':'.
 */
export function newTag(brokerId: string): string {
  return `${brokerId.replaceAll(':', '_')}.${randomBytes(4).toString('hex')}`
}

/**
 * The writing side of capture: this writer's capture store (registered and kept
 * alive), recovery of dead brokers' stores, and the batcher with its pump connection.
 * Runs on the broker's thread, or inside the capture thread (capture-thread.ts).
 * `redis` carries the store's HSETs and the recovery; the pump gets a connection of
 * its own.
 */
export async function startCapture(settings: CaptureSettings, redis: Redis, tag: string, log: Logger, onWritten?: (oldestTs: number) => void, pumpThread = false): Promise<CaptureOutput & { readonly sink: EventBatcher }> {
  const { prefix } = settings
  const store = await registerStore(redis, prefix, tag)
  const recovery = startRecovery({ redis, prefix, tag, maxJobEvents: settings.captureMaxJobEvents, maxJobBytes: settings.captureMaxJobBytes, log })
  // MQFN_CAPTURE_THREAD=pump: the pump's connection is the pump thread's own
  const pump = pumpThread
    ? await createThreadPump({ redisUrl: settings.redisUrl, brokerId: settings.brokerId, prefix, tag, storeKey: storeKey(prefix, tag), maxJobEvents: settings.captureMaxJobEvents, maxJobBytes: settings.captureMaxJobBytes }, log)
    : undefined
  const pumpConnection = pump ? undefined : createRedis(settings.redisUrl, `mqfn-broker-pump:${settings.brokerId}`)
  // the shared connection's listener reports Redis errors; they are the same outage
  pumpConnection?.on('error', () => {})
  const batcher = new EventBatcher({
    redis,
    pump,
    pumpRedis: pumpConnection,
    prefix,
    tag,
    storeKey: storeKey(prefix, tag),
    log,
    maxJobEvents: settings.captureMaxJobEvents,
    maxJobBytes: settings.captureMaxJobBytes,
    maxBacklogEvents: settings.captureMaxBacklogEvents,
    maxBacklogBytes: settings.captureMaxBacklogBytes,
    onWritten,
  })
  return {
    sink: batcher,
    async close(flushTimeoutMs) {
      const flushed = await within(flushTimeoutMs, batcher.close())
      recovery.close()
      // what is left in the store is recovered by another broker once the alive key expires
      await within(1000, store.close(flushed && batcher.backlog.events === 0))
      if (flushed) await pumpConnection?.quit().catch(() => pumpConnection.disconnect())
      else pumpConnection?.disconnect()
      return flushed
    },
  }
}

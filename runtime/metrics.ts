import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { MongoClient } from 'mongodb'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { WireEvent } from '../common/events.ts'
import type { Logger } from '../common/logger.ts'
import type { AttemptError } from '../common/queues.ts'
import { DeadLetters } from './redelivery/index.ts'
import { within } from '../common/within.ts'

/*
 * The worker's Prometheus metrics. Queue depths are read from BullMQ when scraped
 * (cached for a second, so several scrapers do not multiply Redis round trips);
 * everything else is counted as it happens.
 */

export type HandlerOutcome = 'ok' | 'error' | 'timeout'
const DEPTH_STATES = ['waiting', 'active', 'delayed', 'failed'] as const
const DEPTH_CACHE_MS = 1000
// a scrape while Redis is down answers with the last depths instead of hanging
const DEPTH_TIMEOUT_MS = 1000

export interface WorkerMetrics {
  readonly registry: Registry
  job(queue: string, outcome: 'completed' | 'failed'): void
  handler(name: string, outcome: HandlerOutcome, seconds: number): void
  deadLetter(handler: string): void
  /** The handler files that did not load, and the event types held back because of them. */
  handlerFiles(failed: readonly { path: string; error: { code: string } }[], held: readonly string[]): void
  /** Counts reconnects and errors of a Redis connection. */
  watchRedis(connection: Redis): void
  /** Counts failed heartbeats and recoveries of the MongoDB client. */
  watchMongo(client: MongoClient): void
}

export function createWorkerMetrics(depthQueues: readonly Queue[]): WorkerMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })

  let depths: { at: number; counts: Map<string, Record<string, number>> } = { at: 0, counts: new Map() }
  const readDepths = async () => {
    if (Date.now() - depths.at < DEPTH_CACHE_MS) return depths.counts
    const counts = new Map<string, Record<string, number>>()
    const reads = Promise.all(depthQueues.map(async (q) => counts.set(q.name, await q.getJobCounts(...DEPTH_STATES))))
    // a failed or late read keeps the previous depths
    let read = false
    await within(DEPTH_TIMEOUT_MS, reads.then(() => void (read = true), () => {}))
    if (read) depths = { at: Date.now(), counts }
    return depths.counts
  }
  new Gauge({
    name: 'mqfn_worker_queue_jobs',
    help: 'Jobs in each event queue by state (waiting, active, delayed, failed), read from BullMQ at scrape time',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      const counts = await readDepths()
      for (const [queue, byState] of counts) {
        for (const state of DEPTH_STATES) this.set({ queue, state }, byState[state] ?? 0)
      }
    },
  })
  const completed = new Counter({ name: 'mqfn_worker_jobs_completed_total', help: 'BullMQ jobs (event batches and retries) completed, by queue', labelNames: ['queue'], registers: [registry] })
  const failed = new Counter({ name: 'mqfn_worker_jobs_failed_total', help: 'BullMQ job attempts that failed, by queue', labelNames: ['queue'], registers: [registry] })
  const duration = new Histogram({
    name: 'mqfn_worker_handler_duration_seconds',
    help: 'Handler attempts: how long each ran, by handler and outcome (ok, error, timeout)',
    labelNames: ['handler', 'outcome'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  })
  const dead = new Counter({ name: 'mqfn_worker_dead_letters_total', help: 'Dead letters written, by handler ("" for events that failed validation)', labelNames: ['handler'], registers: [registry] })
  const redisReconnects = new Counter({ name: 'mqfn_worker_redis_reconnects_total', help: 'Reconnection attempts of the worker\'s Redis connections', registers: [registry] })
  const redisErrors = new Counter({ name: 'mqfn_worker_redis_errors_total', help: 'Errors on the worker\'s Redis connections', registers: [registry] })
  const mongoReconnects = new Counter({ name: 'mqfn_worker_mongo_reconnects_total', help: 'Times MongoDB answered again after failed heartbeats', registers: [registry] })
  const failedFiles = new Gauge({ name: 'mqfn_worker_handler_files_failed', help: 'Handler files that did not load (1 each), by path and error code; their event types are not consumed', labelNames: ['path', 'code'], registers: [registry] })
  const heldEvents = new Gauge({ name: 'mqfn_worker_events_held', help: 'Event types this worker does not consume because a handler file of theirs did not load (1 each)', labelNames: ['event'], registers: [registry] })
  const mongoErrors = new Counter({ name: 'mqfn_worker_mongo_errors_total', help: 'Failed MongoDB heartbeats', registers: [registry] })

  return {
    registry,
    job: (queue, outcome) => (outcome === 'completed' ? completed : failed).inc({ queue }),
    handler: (name, outcome, seconds) => duration.observe({ handler: name, outcome }, seconds),
    deadLetter: (handler) => dead.inc({ handler }),
    handlerFiles(failed, held) {
      for (const f of failed) failedFiles.set({ path: f.path, code: f.error.code }, 1)
      for (const event of held) heldEvents.set({ event }, 1)
    },
    watchRedis(connection) {
      connection.on('reconnecting', () => redisReconnects.inc())
      connection.on('error', () => redisErrors.inc())
    },
    watchMongo(client) {
      let down = false
      client.on('serverHeartbeatFailed', () => {
        mongoErrors.inc()
        down = true
      })
      client.on('serverHeartbeatSucceeded', () => {
        if (down) mongoReconnects.inc()
        down = false
      })
    },
  }
}

/**
 * The dead-letter store, counted and logged: a line per dead letter with the event
 * id, client id and handler, so `grep <eventId>` ends where the event gave up.
 */
export class ObservedDeadLetters extends DeadLetters {
  private readonly metrics: WorkerMetrics
  private readonly log: Logger

  constructor(...[db, metrics, log]: [...ConstructorParameters<typeof DeadLetters>, WorkerMetrics, Logger]) {
    super(db)
    this.metrics = metrics
    this.log = log
  }

  override async handlerGaveUp(event: WireEvent, handler: string, errors: AttemptError[]): Promise<void> {
    await super.handlerGaveUp(event, handler, errors)
    this.metrics.deadLetter(handler)
    const clientId = 'clientId' in event ? event.clientId : undefined
    this.log.warn({ eventId: event.id, clientId, event: event.type, handler, attempts: errors.length, err: errors[errors.length - 1]?.message }, 'dead-lettered')
  }

  override async invalidEvent(raw: unknown, message: string): Promise<void> {
    await super.invalidEvent(raw, message)
    this.metrics.deadLetter('')
    const id = typeof raw === 'object' && raw !== null ? (raw as { id?: unknown }).id : undefined
    this.log.warn({ eventId: typeof id === 'string' ? id : undefined, err: message }, 'invalid event dead-lettered')
  }
}

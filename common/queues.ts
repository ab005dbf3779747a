import type { EventType } from './event-types.ts'
import type { WireEvent } from './events.ts'

/*
 * BullMQ layout, shared by broker and runtime.
 *
 * One queue per event type. The broker writes one `batch` job per event type and
 * flush (many events per job: one BullMQ job per event measured at 24–42% of plain
 * aedes throughput). Per-event guarantees live below the batch: a handler that fails
 * on one event gets a `retry` job of its own for that (event, handler) pair, with
 * that handler's attempts and backoff, and is dead-lettered alone.
 *
 * The default prefix carries a Redis Cluster hash tag, so every key of every queue
 * lands in one slot; a per-type prefix (`{mqfn-published}`) spreads queues across
 * shards instead.
 */

export const DEFAULT_PREFIX = '{mqfn}'
export const OUTBOX_QUEUE = 'outbox'

export const JOB_BATCH = 'batch'
export const JOB_RETRY = 'retry'
export const JOB_PUBLISH = 'publish'

export function queueName(type: EventType): string {
  return type
}

export interface BatchJobData {
  v: 1
  events: WireEvent[]
  /** `replay`: `mqfn replay` re-enqueued history. Absent: the broker captured the events. */
  origin?: 'replay'
}

/**
 * Why a retry job exists: a handler's failed first attempt (`retry`, also when absent),
 * `mqfn replay --handler` (`replay`), or `mqfn dlq retry` / the dashboard's Retry
 * (`dlq-retry`). The job carries it in its data (runtime/redelivery reads it).
 */
export type RetryOrigin = 'retry' | 'replay' | 'dlq-retry'

export interface AttemptError {
  attempt: number
  at: number
  message: string
  name: string
  /** The registry code (common/errors.ts) when the runtime failed the attempt: a timeout, a refused payload, … */
  code?: string
  stack?: string
}

export interface RetryJobData {
  v: 1
  event: WireEvent
  handler: string
  /** Errors of the attempts so far, oldest first. */
  errors: AttemptError[]
  /** Absent in jobs of older versions (runtime/redelivery/origin.ts reads their id prefixes). */
  origin?: RetryOrigin
  /** Set when `mqfn dlq retry` re-enqueued a dead letter: it is deleted once the handler succeeds. */
  deadLetterId?: string
  /** When the MongoDB outage this job is waiting out began (ms). */
  outageSince?: number
}

/** A message a handler published through ctx.publish, delivered by whichever broker takes the job. */
export interface OutboxJobData {
  topic: string
  payload: string
  qos: 0 | 1 | 2
  retain: boolean
  /** MQTT 5 PUBLISH properties; correlationData base64. Absent in jobs of older workers. */
  properties?: OutboxProperties
}

/** What ctx.publish may set of a PUBLISH's properties [MQTT-3.3.2.3], as JSON. */
export interface OutboxProperties {
  payloadFormatIndicator?: boolean
  messageExpiryInterval?: number
  contentType?: string
  responseTopic?: string
  correlationData?: string
  userProperties?: Record<string, string | string[]>
}

/**
 * Options of the broker's batch jobs. A batch fails only when the store is
 * unreachable (handler failures become retry jobs), so it retries for a long time:
 * 0.5 s doubling, 14 attempts ≈ 68 minutes in all before it lands in the failed set.
 */
export const BATCH_JOB_OPTIONS = {
  attempts: 14,
  backoff: { type: 'exponential', delay: 500, jitter: 0.5 },
  removeOnComplete: true,
  removeOnFail: { count: 10_000 },
} as const

export const OUTBOX_JOB_OPTIONS = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 200, jitter: 0.5 },
  removeOnComplete: true,
  removeOnFail: { count: 10_000 },
} as const

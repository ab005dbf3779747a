import { randomBytes } from 'node:crypto'
import { Queue, type JobsOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Collection, Db, Filter } from 'mongodb'
import { isEventType, type EventType } from '../common/event-types.ts'
import { mqfnError } from '../common/errors.ts'
import { parseWireEvent } from '../common/events.ts'
import { JOB_RETRY, queueName, type AttemptError, type RetryJobData } from '../common/queues.ts'
import { DEAD_LETTERS_COLLECTION, type DeadLetterDocument } from './store/dead-letters.ts'

/*
 * The operations behind `mqfn dlq`: reading, re-enqueuing and deleting dead letters.
 * They take the MongoDB Db and, for retry, a function that adds jobs to a queue, so
 * the command line stays a thin layer of parsing and printing.
 */

/** Which dead letters an operation applies to; every given field must match. */
export interface DeadLetterFilter {
  ids?: readonly string[]
  type?: EventType
  handler?: string
  /** deadAt at or after. */
  since?: Date
  /** deadAt at or before. */
  until?: Date
}

export function isEmptyFilter(filter: DeadLetterFilter): boolean {
  return !filter.ids?.length && !filter.type && !filter.handler && !filter.since && !filter.until
}

function query(filter: DeadLetterFilter): Filter<DeadLetterDocument> {
  const q: Filter<DeadLetterDocument> = {}
  if (filter.ids?.length) q._id = { $in: [...filter.ids] }
  if (filter.type) q.type = filter.type
  if (filter.handler) q.handler = filter.handler
  if (filter.since || filter.until) {
    q.deadAt = { ...(filter.since && { $gte: filter.since }), ...(filter.until && { $lte: filter.until }) }
  }
  return q
}

function collection(db: Db): Collection<DeadLetterDocument> {
  return db.collection<DeadLetterDocument>(DEAD_LETTERS_COLLECTION)
}

/** Ids given by hand that match nothing are almost always typos: refuse before changing anything. */
async function assertIdsExist(db: Db, ids: readonly string[] | undefined): Promise<void> {
  if (!ids?.length) return
  const found = await collection(db).find({ _id: { $in: [...ids] } }, { projection: { _id: 1 } }).toArray()
  const known = new Set(found.map((d) => d._id))
  const missing = [...new Set(ids)].filter((id) => !known.has(id))
  if (missing.length > 0) throw mqfnError('MQFN_ERR_DLQ_NOT_FOUND', missing)
}

export interface DeadLetterSummary {
  id: string
  eventId: string
  type: string
  handler: string | null
  deadAt: Date
  attempts: number
  lastError: { name: string; message: string } | null
}

export function summarise(doc: DeadLetterDocument): DeadLetterSummary {
  const errors = doc.errors ?? []
  const last = errors[errors.length - 1]
  return {
    id: doc._id,
    eventId: doc.eventId,
    type: doc.type,
    handler: doc.handler,
    deadAt: doc.deadAt,
    attempts: errors.length,
    lastError: last ? { name: last.name, message: last.message } : null,
  }
}

/** Newest first, at most `limit`, with how many match in all. */
export async function listDeadLetters(db: Db, filter: DeadLetterFilter, limit: number): Promise<{ letters: DeadLetterSummary[]; total: number }> {
  const q = query(filter)
  const [docs, total] = await Promise.all([
    collection(db).find(q).sort({ deadAt: -1, _id: -1 }).limit(limit).toArray(),
    collection(db).countDocuments(q),
  ])
  return { letters: docs.map(summarise), total }
}

export async function getDeadLetter(db: Db, id: string): Promise<DeadLetterDocument> {
  const doc = await collection(db).findOne({ _id: id })
  if (!doc) throw mqfnError('MQFN_ERR_DLQ_NOT_FOUND', [id])
  return doc
}

export interface DecodedPayload {
  bytes: number
  encoding: 'utf8' | 'hex'
  text: string
}

/** A published event's payload travels as base64; people want to read it, or see its bytes when it is not text. */
export function decodePayload(event: unknown): DecodedPayload | undefined {
  if (typeof event !== 'object' || event === null) return undefined
  const payload = (event as { payload?: unknown }).payload
  if (typeof payload !== 'string') return undefined
  const buf = Buffer.from(payload, 'base64')
  try {
    return { bytes: buf.length, encoding: 'utf8', text: new TextDecoder('utf-8', { fatal: true }).decode(buf) }
  } catch {
    return { bytes: buf.length, encoding: 'hex', text: buf.toString('hex') }
  }
}

export interface RetryJob {
  name: typeof JOB_RETRY
  data: RetryJobData
  opts: JobsOptions
}

/** Adds retry jobs to the queue of one event type: what `retry` needs from Redis. */
export type EnqueueRetries = (type: EventType, jobs: RetryJob[]) => Promise<void>

export interface RetryOptions {
  /** BullMQ attempts of each re-enqueued job. */
  attempts: number
  /** Delay before the second attempt, doubling after. */
  backoffMs: number
  dryRun: boolean
}

export interface RetryReport {
  enqueued: number
  skipped: { id: string; reason: string }[]
}

// addBulk is one round trip per chunk; a chunk bounds the memory a big retry holds
const CHUNK = 500

/**
 * Re-enqueues each matching dead letter as a `retry` job for its handler, carrying its
 * errors (attempt numbers continue after them) and its id, so the worker deletes it
 * once the handler succeeds or writes it again, with the new errors, if it fails.
 * The document stays in place meanwhile: nothing is lost if no worker takes the job.
 */
export async function retryDeadLetters(db: Db, enqueue: EnqueueRetries, filter: DeadLetterFilter, options: RetryOptions): Promise<RetryReport> {
  await assertIdsExist(db, filter.ids)
  const report: RetryReport = { enqueued: 0, skipped: [] }
  const pending = new Map<EventType, RetryJob[]>()
  const flush = async (type: EventType) => {
    const jobs = pending.get(type)
    if (!jobs?.length) return
    pending.delete(type)
    if (!options.dryRun) await enqueue(type, jobs)
    report.enqueued += jobs.length
  }
  // oldest first, so re-enqueued events reach handlers in the order they first failed
  for await (const doc of collection(db).find(query(filter)).sort({ deadAt: 1, _id: 1 })) {
    const job = retryJob(doc, options)
    if (typeof job === 'string') {
      report.skipped.push({ id: doc._id, reason: job })
      continue
    }
    const type = job.data.event.type
    const jobs = pending.get(type) ?? []
    jobs.push(job)
    pending.set(type, jobs)
    if (jobs.length >= CHUNK) await flush(type)
  }
  for (const type of [...pending.keys()]) await flush(type)
  return report
}

/** The job for one dead letter, or why it cannot be retried. */
function retryJob(doc: DeadLetterDocument, options: RetryOptions): RetryJob | string {
  if (doc.handler === null) return 'the event failed validation; a retry cannot fix it (purge it instead)'
  const parsed = parseWireEvent(doc.event)
  // the worker would dead-letter it again as invalid, under another id
  if (!parsed.ok) return `the stored event is not valid (${parsed.error}); purge it instead`
  if (!isEventType(doc.type) || parsed.event.type !== doc.type) return `the stored event type "${parsed.event.type}" does not match the dead letter's "${doc.type}"`
  const errors: AttemptError[] = doc.errors ?? []
  return {
    name: JOB_RETRY,
    data: { v: 1, event: parsed.event, handler: doc.handler, errors, deadLetterId: doc._id },
    opts: {
      // unique per retry: an earlier retry job of the same dead letter may still be kept as failed
      jobId: `dlq~${doc._id.replace(/[/:]/g, '~')}~${Date.now().toString(36)}${randomBytes(4).toString('hex')}`,
      attempts: options.attempts,
      backoff: { type: 'exponential', delay: options.backoffMs, jitter: 0.5 },
      removeOnComplete: true,
      removeOnFail: { count: 10_000 },
    },
  }
}

/** One BullMQ queue per event type on a shared connection, made when first needed. */
export function retryQueues(connection: Redis, prefix: string): { enqueue: EnqueueRetries; close(): Promise<void> } {
  const queues = new Map<EventType, Queue<RetryJobData>>()
  return {
    enqueue: async (type, jobs) => {
      let queue = queues.get(type)
      if (!queue) {
        queue = new Queue<RetryJobData>(queueName(type), { connection, prefix })
        queue.on('error', () => {}) // the failed addBulk reports it
        queues.set(type, queue)
      }
      await queue.addBulk(jobs)
    },
    close: async () => {
      await Promise.all([...queues.values()].map((q) => q.close()))
    },
  }
}

/**
 * Deletes matching dead letters and returns how many (or counts them on a dry run).
 * Everything is purged only when asked for by name: an empty filter is refused, so
 * a forgotten flag cannot empty the collection.
 */
export async function purgeDeadLetters(db: Db, selection: DeadLetterFilter | 'all', options: { dryRun: boolean }): Promise<number> {
  if (selection !== 'all' && isEmptyFilter(selection)) throw new Error('purgeDeadLetters: an empty filter; pass "all" to delete every dead letter')
  const filter = selection === 'all' ? {} : selection
  await assertIdsExist(db, filter.ids)
  const q = query(filter)
  if (options.dryRun) return collection(db).countDocuments(q)
  const result = await collection(db).deleteMany(q)
  return result.deletedCount
}

import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Db } from 'mongodb'
import { isEventType, type EventType } from '../../common/event-types.ts'
import { parseWireEvent } from '../../common/events.ts'
import { queueName, type RetryJobData } from '../../common/queues.ts'
import { assertIdsExist, deadLetterCollection, deadLetterQuery, type DeadLetterFilter } from './dead-letters.ts'
import { deadLetterRetry, type RetryJob } from './jobs.ts'
import type { DeadLetterDocument } from './store.ts'

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
 * Re-enqueues each matching dead letter as a `dlq-retry` job for its handler, carrying
 * its errors (attempt numbers continue after them) and its id, so the worker deletes
 * it once the handler succeeds or writes it again, with the new errors, if it fails.
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
  for await (const doc of deadLetterCollection(db).find(deadLetterQuery(filter)).sort({ deadAt: 1, _id: 1 })) {
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
  return deadLetterRetry(parsed.event, doc.handler, doc.errors ?? [], doc._id, options)
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

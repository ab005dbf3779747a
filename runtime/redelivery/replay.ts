import type { Db, Filter } from 'mongodb'
import type { EventType } from '../../common/event-types.ts'
import { parseWireEvent, type WireEvent } from '../../common/events.ts'
import { topicMatches } from '../../common/topic.ts'
import { EVENTS_COLLECTION, fromDocument, type EventDocument } from '../store/event-log.ts'
import { newRunId, replayBatch, replayRetry, type BatchJob, type RetryJob } from './jobs.ts'

/*
 * `mqfn replay`: events from the event log back into their queue, so a fixed or new
 * handler can process history. Without a handler they go back as batch jobs (every
 * handler runs; the event log and presence ignore what they already hold); with one,
 * as retry jobs for that handler alone. Either way the jobs say `origin: 'replay'`,
 * so an ordered handler runs them outside its clients' live chains.
 */

export interface ReplayFilter {
  type: EventType
  /** MQTT topic filter, matched with + and # semantics. */
  topic?: string
  clientId?: string
  since?: Date
  until?: Date
}

export interface ReplayOptions {
  handler?: string
  /** Attempts of each retry job (with a handler). */
  attempts: number
  dryRun: boolean
  onProgress?: (done: number, scanned: number, total: number) => void
}

export type ReplayJob = BatchJob | RetryJob

const CHUNK = 500

export async function replayEvents(db: Db, filter: ReplayFilter, enqueue: (jobs: ReplayJob[]) => Promise<void>, options: ReplayOptions): Promise<{ replayed: number; invalid: number }> {
  const query: Filter<EventDocument> = { type: filter.type } as Filter<EventDocument>
  if (filter.clientId !== undefined) (query as Record<string, unknown>).clientId = filter.clientId
  if (filter.since || filter.until) query.ts = { ...(filter.since && { $gte: filter.since }), ...(filter.until && { $lte: filter.until }) }
  const collection = db.collection<EventDocument>(EVENTS_COLLECTION)
  const total = await collection.countDocuments(query)
  const run = `replay-${newRunId()}`
  let replayed = 0
  let scanned = 0
  let invalid = 0
  let pending: WireEvent[] = []
  const flush = async () => {
    if (pending.length === 0) return
    const events = pending
    pending = []
    if (!options.dryRun) {
      const handler = options.handler
      const jobs: ReplayJob[] = handler
        ? events.map((event) => replayRetry(event, handler, options.attempts, run))
        : [replayBatch(events, run, replayed)]
      await enqueue(jobs)
    }
    replayed += events.length
    options.onProgress?.(replayed, scanned, total)
  }
  // oldest first: handlers see history in the order it happened
  for await (const doc of collection.find(query).sort({ ts: 1, _id: 1 })) {
    scanned++
    const parsed = parseWireEvent(fromDocument(doc))
    if (!parsed.ok) {
      invalid++
      continue
    }
    const event = parsed.event
    if (filter.topic !== undefined && !('topic' in event && event.topic !== undefined && topicMatches(filter.topic, event.topic))) continue
    pending.push(event)
    if (pending.length >= CHUNK) await flush()
  }
  await flush()
  options.onProgress?.(replayed, scanned, total)
  return { replayed, invalid }
}

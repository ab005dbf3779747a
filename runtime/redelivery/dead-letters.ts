import type { Collection, Db, Filter } from 'mongodb'
import type { EventType } from '../../common/event-types.ts'
import { mqfnError } from '../../common/errors.ts'
import { DEAD_LETTERS_COLLECTION, type DeadLetterDocument } from './store.ts'

/*
 * The operations behind `mqfn dlq` and the dashboard: reading and deleting dead
 * letters (retrying them: retry-dead-letters.ts). They take the MongoDB Db, so the
 * command line stays a thin layer of parsing and printing.
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

export function deadLetterQuery(filter: DeadLetterFilter): Filter<DeadLetterDocument> {
  const q: Filter<DeadLetterDocument> = {}
  if (filter.ids?.length) q._id = { $in: [...filter.ids] }
  if (filter.type) q.type = filter.type
  if (filter.handler) q.handler = filter.handler
  if (filter.since || filter.until) {
    q.deadAt = { ...(filter.since && { $gte: filter.since }), ...(filter.until && { $lte: filter.until }) }
  }
  return q
}

export function deadLetterCollection(db: Db): Collection<DeadLetterDocument> {
  return db.collection<DeadLetterDocument>(DEAD_LETTERS_COLLECTION)
}

/** Ids given by hand that match nothing are almost always typos: refuse before changing anything. */
export async function assertIdsExist(db: Db, ids: readonly string[] | undefined): Promise<void> {
  if (!ids?.length) return
  const found = await deadLetterCollection(db).find({ _id: { $in: [...ids] } }, { projection: { _id: 1 } }).toArray()
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
  const q = deadLetterQuery(filter)
  const [docs, total] = await Promise.all([
    deadLetterCollection(db).find(q).sort({ deadAt: -1, _id: -1 }).limit(limit).toArray(),
    deadLetterCollection(db).countDocuments(q),
  ])
  return { letters: docs.map(summarise), total }
}

export async function getDeadLetter(db: Db, id: string): Promise<DeadLetterDocument> {
  const doc = await deadLetterCollection(db).findOne({ _id: id })
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

/**
 * Deletes matching dead letters and returns how many (or counts them on a dry run).
 * Everything is purged only when asked for by name: an empty filter is refused, so
 * a forgotten flag cannot empty the collection.
 */
export async function purgeDeadLetters(db: Db, selection: DeadLetterFilter | 'all', options: { dryRun: boolean }): Promise<number> {
  if (selection !== 'all' && isEmptyFilter(selection)) throw new Error('purgeDeadLetters: an empty filter; pass "all" to delete every dead letter')
  const filter = selection === 'all' ? {} : selection
  await assertIdsExist(db, filter.ids)
  const q = deadLetterQuery(filter)
  if (options.dryRun) return deadLetterCollection(db).countDocuments(q)
  const result = await deadLetterCollection(db).deleteMany(q)
  return result.deletedCount
}

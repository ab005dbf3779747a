import { Binary, type Collection, type Db } from 'mongodb'
import type { WireEvent } from '../../common/events.ts'
import type { Logger } from '../../common/logger.ts'
import { onlyDuplicates } from './mongo-errors.ts'
import { ensureIndexes } from './indexes.ts'
import { GroupCommit } from './group-commit.ts'

export const EVENTS_COLLECTION = 'events'

/** How often the event log is swept where the server has no TTL index (all workers together). */
const SWEEP_PERIOD_MS = 60 * 60_000
const SWEEP_CHECK_MS = 5 * 60_000

/** The periodic sweep where the server has no TTL index. */
export interface SweepOptions {
  /** Takes the right to sweep for one period across every worker (a Redis SET NX PX in the worker). */
  claim: (periodMs: number) => Promise<boolean>
  /** Gives the claim back after a failed sweep. */
  release: () => Promise<void>
  /** How often a worker checks whether a sweep is due. */
  checkMs: number
  /** At most one sweep per period. */
  periodMs: number
}

/** An event as stored: `_id` is the event id, `ts` a Date, the payload BSON binary. */
export type EventDocument = Omit<WireEvent, 'id' | 'ts' | 'payload'> & { _id: string; ts: Date; payload?: Binary }

export function toDocument(event: WireEvent): EventDocument {
  // one pass, no rest/spread copies: this runs for every event, and two object
  // spreads took ~12 µs per event in a micro-benchmark, this loop ~1.5–4 µs (docs/performance.md)
  const doc: Record<string, unknown> = { _id: event.id }
  for (const key in event) if (key !== 'id') doc[key] = (event as Record<string, unknown>)[key]
  doc.ts = new Date(event.ts)
  if (event.type === 'published') {
    doc.payload = new Binary(Buffer.from(event.payload, 'base64'))
    // MQTT 5 correlation data is bytes too
    const correlationData = event.properties?.correlationData
    if (correlationData !== undefined) doc.properties = { ...event.properties, correlationData: new Binary(Buffer.from(correlationData, 'base64')) }
  }
  return doc as EventDocument
}

/** The inverse of toDocument: an event as it travels again (replay, invoke --from-log). */
export function fromDocument(doc: EventDocument): unknown {
  const { _id, ts, payload, ...rest } = doc
  const event: Record<string, unknown> = { ...rest, id: _id, ts: ts.getTime(), ...(payload ? { payload: Buffer.from(payload.buffer).toString('base64') } : {}) }
  const properties = (rest as { properties?: { correlationData?: unknown } }).properties
  if (properties?.correlationData instanceof Binary) event.properties = { ...properties, correlationData: Buffer.from(properties.correlationData.buffer).toString('base64') }
  return event
}

/**
 * Every event once. The event id is the document id, so a batch processed twice
 * (a retried or stalled job) inserts nothing the second time.
 */
export class EventLog {
  readonly collection: Collection<EventDocument>
  private readonly retentionDays: number
  private readonly log: Logger
  private sweeper: NodeJS.Timeout | undefined
  // concurrent jobs' events go out in one insertMany (see group-commit.ts)
  private readonly inserts = new GroupCommit<EventDocument>(async (docs) => {
    try {
      await this.collection.insertMany(docs, { ordered: false })
    } catch (err) {
      if (!onlyDuplicates(err)) throw err
    }
  })

  private readonly sweepOpts: SweepOptions

  constructor(private readonly db: Db, retentionDays: number, log: Logger, sweep: Partial<SweepOptions> = {}) {
    this.collection = db.collection<EventDocument>(EVENTS_COLLECTION)
    this.retentionDays = retentionDays
    this.log = log
    this.sweepOpts = { claim: async () => true, release: async () => {}, checkMs: SWEEP_CHECK_MS, periodMs: SWEEP_PERIOD_MS, ...sweep }
  }

  async setup(): Promise<void> {
    // What the documented queries need: `mqfn replay` (a type, a time range, oldest
    // first) and the dashboard's type filter use type_ts; its client filter client_ts;
    // `mqfn invoke --from-log` the _id. The dashboard's topic filter walks the newest
    // events (the retention index on ts, where there is one) instead of paying an index
    // on every insert for an interactive view; that index was dropped (docs/performance.md).
    await ensureIndexes(this.collection, [
      { key: { type: 1, ts: -1 }, name: 'type_ts' },
      { key: { clientId: 1, ts: -1 }, name: 'client_ts' },
    ], { db: this.db, obsolete: ['topic_ts'] })
    if (this.retentionDays <= 0) return
    const seconds = Math.round(this.retentionDays * 86_400)
    try {
      await this.collection.createIndex({ ts: 1 }, { name: 'retention', expireAfterSeconds: seconds })
    } catch (err) {
      // FerretDB 1.x has no TTL indexes (NotImplemented, code 238): sweep instead.
      if ((err as { code?: unknown }).code !== 238) throw err
      this.log.warn({ retentionDays: this.retentionDays }, 'the database has no TTL indexes: expiring the event log with a periodic sweep')
      // The sweep scans the whole collection on FerretDB: every minute in every worker it
      // took the store for seconds and handler-start latency went from ms to seconds
      // (docs/performance.md). Once per period across all workers is enough for a
      // retention counted in days; a check every few minutes finds whether it is due.
      const sweep = async () => {
        if (!(await this.sweepOpts.claim(this.sweepOpts.periodMs))) return
        const cutoff = new Date(Date.now() - seconds * 1000)
        try {
          // FerretDB answers a filtered deleteMany by reading the whole collection in one
          // read transaction, and SQLite cannot checkpoint its WAL meanwhile: under a
          // fleet's writes the WAL grew by ~1 MB/s and the pipeline fell behind for good
          // (docs/performance.md, "Fleet"). An unfiltered find with a limit is a bare
          // `LIMIT 1` there: the first event in insertion order. While it is younger than
          // the cutoff there is nothing to sweep but events inserted long after their time
          // (a dead letter retried), which wait for a later sweep.
          const first = await this.collection.find({}, { projection: { ts: 1 }, limit: 1 }).next()
          if (!first || first.ts >= cutoff) return
          const { deletedCount } = await this.collection.deleteMany({ ts: { $lt: cutoff } })
          this.log.info({ deleted: deletedCount, before: cutoff }, 'event log swept')
        } catch (err) {
          // let the next check (this worker's or another's) try again rather than wait a period
          await this.sweepOpts.release().catch(() => {})
          throw err
        }
      }
      this.sweeper = setInterval(() => void sweep().catch((e: unknown) => this.log.warn({ err: e }, 'event log sweep failed')), this.sweepOpts.checkMs)
      this.sweeper.unref()
    }
  }

  /** Resolves once every event is stored (or was already). */
  append(events: readonly WireEvent[]): Promise<void> {
    return this.inserts.add(events.map(toDocument))
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper)
  }
}

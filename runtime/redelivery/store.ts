import type { Collection, Db } from 'mongodb'
import type { AttemptError } from '../../common/queues.ts'
import type { WireEvent } from '../../common/events.ts'
import type { ErrorCode } from '../../common/errors.ts'
import { ensureIndexes } from '../store/indexes.ts'

export const DEAD_LETTERS_COLLECTION = 'deadletters'

export interface DeadLetterDocument {
  /** `<eventId>/<handler>`, or `<eventId>` for an event that failed validation. */
  _id: string
  eventId: string
  type: string
  handler: string | null
  /** The event as it travelled (payload base64), ready to be re-enqueued. */
  event: unknown
  errors: AttemptError[]
  deadAt: Date
}

/** Events whose handlers gave up, kept with every attempt's error until retried or purged. */
export class DeadLetters {
  readonly collection: Collection<DeadLetterDocument>

  constructor(db: Db) {
    this.collection = db.collection<DeadLetterDocument>(DEAD_LETTERS_COLLECTION)
  }

  async setup(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { type: 1, deadAt: -1 }, name: 'type_deadAt' },
      { key: { handler: 1, deadAt: -1 }, name: 'handler_deadAt' },
    ])
  }

  async handlerGaveUp(event: WireEvent, handler: string, errors: AttemptError[]): Promise<void> {
    await this.put({ _id: `${event.id}/${handler}`, eventId: event.id, type: event.type, handler, event, errors, deadAt: new Date() })
  }

  /** An envelope that fails validation is dead at once: retrying cannot fix it. */
  async invalidEvent(raw: unknown, message: string): Promise<void> {
    const r = (typeof raw === 'object' && raw !== null ? raw : {}) as { id?: unknown; type?: unknown }
    const eventId = typeof r.id === 'string' ? r.id : `invalid-${Date.now()}-${Math.random().toString(36).slice(2)}`
    await this.put({
      _id: eventId,
      eventId,
      type: typeof r.type === 'string' ? r.type : 'unknown',
      handler: null,
      event: raw,
      // named ValidationError since before it had a code: dead-letter queries may select it by name
      errors: [{ attempt: 1, at: Date.now(), name: 'ValidationError', code: 'MQFN_ERR_EVENT_INVALID' satisfies ErrorCode, message }],
      deadAt: new Date(),
    })
  }

  /** A dead letter whose handler has now succeeded (after `mqfn dlq retry`). */
  async resolved(id: string): Promise<void> {
    await this.collection.deleteOne({ _id: id })
  }

  private async put(doc: DeadLetterDocument): Promise<void> {
    await this.collection.replaceOne({ _id: doc._id }, doc, { upsert: true })
  }
}

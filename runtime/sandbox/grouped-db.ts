import { BSON, MongoBulkWriteError, MongoInvalidArgumentError, type Collection, type Db, type Document, type InsertOneResult } from 'mongodb'

/** Most documents in one shared insertMany: bounds how long the last of a deep group waits. */
const MAX_GROUP = 500

interface Waiting {
  doc: Document
  resolve: (result: InsertOneResult) => void
  reject: (err: unknown) => void
}

/*
 * ctx.db with group-committed inserts. Handlers run concurrently in their thread, and at
 * a fleet's steady rate each event's `insertOne` travels alone: on FerretDB/SQLite every
 * one is a transaction of its own (~140 µs of its CPU and a WAL sync), which capped the
 * shipped example below 1,000 events/s. Here `collection(name).insertOne(doc)` without
 * options joins the inserts asked for while the previous one is in flight: they go out
 * as one unordered insertMany, and each caller still gets what its own insertOne gives.
 *
 * - Unordered: each document is inserted or refused on its own, as separate insertOnes
 *   would be; concurrent inserts have no order between them either way.
 * - A document the server refused (a duplicate key, a validation rule) is sent again
 *   alone with insertOne, so its caller gets that call's exact error (MongoServerError,
 *   code 11000 with keyPattern/keyValue on MongoDB), not a share of a bulk error.
 * - A command that failed as a whole (network, server selection, a command error) or a
 *   write concern not met fails every insert of the group with the driver's
 *   MongoBulkWriteError, which carries that error's message, code and labels: outcome
 *   unknown, as for a lone insert that failed so (the handler's attempt fails and is
 *   retried; an insert keyed by the event id then finds its document or writes it).
 * - An error raised before anything was sent (a document the driver cannot serialise,
 *   or one over the size limit) sends each document again alone: only the bad one fails.
 *
 * Anything else — insertOne with options (a session, a write concern), a collection
 * asked for with options, every other method — is the driver's own, untouched: this is
 * a view over the driver's objects, nothing of the driver is replaced.
 */
export function groupedDb(db: Db): Db {
  const groups = new Map<string, InsertGroup>()
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== 'collection') return Reflect.get(target, prop, receiver) as unknown
      return (name: string, options?: object) => {
        const collection = target.collection(name, options)
        if (hasKeys(options)) return collection
        let group = groups.get(name)
        if (!group) groups.set(name, (group = new InsertGroup(target.collection(name))))
        return groupedCollection(collection, group)
      }
    },
  })
}

function groupedCollection(collection: Collection, group: InsertGroup): Collection {
  const insertOne = (doc: Document, options?: object): Promise<InsertOneResult> =>
    hasKeys(options) ? collection.insertOne(doc, options) : group.insertOne(doc)
  return new Proxy(collection, {
    get(target, prop, receiver) {
      return prop === 'insertOne' ? insertOne : (Reflect.get(target, prop, receiver) as unknown)
    },
  })
}

function hasKeys(options: object | undefined): boolean {
  if (options === undefined || options === null) return false
  for (const _ in options) return true
  return false
}

/** One collection's inserts: while one write is in flight, the next gather. */
class InsertGroup {
  private pending: Waiting[] = []
  private busy = false

  constructor(private readonly collection: Collection) {}

  insertOne(doc: Document): Promise<InsertOneResult> {
    return new Promise<InsertOneResult>((resolve, reject) => {
      this.pending.push({ doc, resolve, reject })
      if (this.busy) return
      this.busy = true
      // gathers the inserts other handler runs ask for in the same turn of the event loop
      setImmediate(() => void this.next())
    })
  }

  private async next(): Promise<void> {
    const group = this.pending.splice(0, MAX_GROUP)
    await this.write(group)
    if (this.pending.length > 0) void this.next()
    else this.busy = false
  }

  /** Settles every caller of the group; never rejects. */
  private async write(group: readonly Waiting[]): Promise<void> {
    if (group.length === 1) return alone(this.collection, group[0] as Waiting)
    try {
      const res = await this.collection.insertMany(group.map((w) => w.doc), { ordered: false })
      group.forEach((w, i) => w.resolve({ acknowledged: res.acknowledged, insertedId: res.insertedIds[i] ?? w.doc._id }))
    } catch (err) {
      if (err instanceof MongoBulkWriteError) return this.sortOut(group, err)
      if (err instanceof BSON.BSONError || err instanceof MongoInvalidArgumentError) {
        await Promise.all(group.map((w) => alone(this.collection, w)))
        return
      }
      for (const w of group) w.reject(err)
    }
  }

  /**
   * After a bulk error. When every document is accounted for (inserted, or refused by
   * the server) the refused ones go again alone and the others succeeded; otherwise a
   * command failed or a write concern was not met, and every caller gets the error.
   */
  private async sortOut(group: readonly Waiting[], err: MongoBulkWriteError): Promise<void> {
    const writeErrors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors]
    const refused = new Set(writeErrors.map((e) => e.index))
    if (err.result.getWriteConcernError() !== undefined || err.insertedCount + refused.size !== group.length) {
      for (const w of group) w.reject(err)
      return
    }
    const retries: Promise<void>[] = []
    group.forEach((w, i) => {
      if (refused.has(i)) retries.push(alone(this.collection, w))
      else w.resolve({ acknowledged: true, insertedId: w.doc._id })
    })
    await Promise.all(retries)
  }
}

function alone(collection: Collection, w: Waiting): Promise<void> {
  return collection.insertOne(w.doc).then(w.resolve, w.reject)
}

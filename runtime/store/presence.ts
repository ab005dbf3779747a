import type { Redis } from 'ioredis'
import type { Collection, Db, UpdateFilter } from 'mongodb'
import type { DisconnectReason } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'
import { isDuplicateKey } from './mongo-errors.ts'
import { ensureIndexes } from './indexes.ts'

export const PRESENCE_COLLECTION = 'presence'

/** How often pending last-seen times are written to Redis, from setup() on. */
const LAST_SEEN_INTERVAL_MS = 1000
/** Last-seen entries older than this are trimmed from the Redis set. */
const LAST_SEEN_KEEP_MS = 30 * 86_400_000

export interface PresenceDocument {
  _id: string
  online: boolean
  /** Epoch of the connection this document describes; only a larger one replaces it. */
  epoch: number
  brokerId: string
  since?: Date
  lastSeen: Date
  remoteAddress?: string
  username?: string
  lastDisconnectAt?: Date
  lastDisconnectReason?: DisconnectReason
}

/** Where the live `lastSeen` of every client is kept: a Redis sorted set, score = ms. */
export interface LastSeenStore {
  redis: Redis
  /** The sorted set's key (`<prefix>:presence:last-seen`). */
  key: string
}

/** The key of the last-seen sorted set under a queue prefix (same hash slot as the queues). */
export function lastSeenKey(prefix: string): string {
  return `${prefix}:presence:last-seen`
}

/*
 * Who is online. Connected and disconnected events travel in different queues and
 * may be processed in any order, or twice; the connection epoch decides:
 * - clientConnected(e) applies only if the stored epoch is older than e;
 * - clientDisconnected(e) applies if the stored epoch is e or older, and marks the
 *   epoch as ended, so a late clientConnected(e) cannot revive it.
 * A conditional upsert that finds a newer document hits the duplicate key on _id:
 * that is the "ignore the stale event" path. A client's first connect is a plain
 * insert (see connect()): the only write FerretDB 1.x does without a scan.
 *
 * MongoDB applies each conditional update atomically. FerretDB 1.24 on SQLite does
 * not (measured: 183 of 300 concurrent pairs lost an update), so writes for one
 * client are also chained within this process; across worker processes only a
 * server with atomic single-document updates keeps presence exact.
 *
 * The store is written on connects and disconnects only; `lastSeen` there is exact at
 * both. The time of a client's latest other event (published, delivered, ...) goes to
 * Redis instead, once a second per worker as one `ZADD GT` of every client seen: a
 * store write per active client per second made presence's writes grow with traffic,
 * and on FerretDB 1.x every update scans the collection (its `_id` lookup misses its
 * own index: docs/handlers.md), so 3,000 devices outran the store (docs/performance.md,
 * "Pipeline").
 */
export class Presence {
  readonly collection: Collection<PresenceDocument>
  private readonly chains = new Map<string, Promise<void>>()
  /** Newest event time per client not yet written to the last-seen set. */
  private seen = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  /** The interval's flush while it runs: the next tick skips, close() waits for it. */
  private flushing: Promise<void> | undefined
  private closed = false
  private trimmedAt = 0
  private readonly lastSeenStore: LastSeenStore | undefined
  private readonly onError: (err: unknown) => void

  /**
   * @param opts.lastSeen where other events' times go; without it they are not kept
   * @param opts.onError a failed periodic last-seen write (kept for the next one)
   */
  constructor(private readonly db: Db, opts: { lastSeen?: LastSeenStore; onError?: (err: unknown) => void } = {}) {
    this.collection = db.collection<PresenceDocument>(PRESENCE_COLLECTION)
    this.lastSeenStore = opts.lastSeen
    this.onError = opts.onError ?? (() => {})
  }

  async setup(): Promise<void> {
    // the dashboard's "online now" (online: true)
    await ensureIndexes(this.collection, [{ key: { online: 1, brokerId: 1 }, name: 'online_broker' }], { db: this.db })
    if (this.timer || this.closed) return
    this.timer = setInterval(() => {
      // with Redis down a flush waits out its timeout: never two at once
      if (this.flushing) return
      this.flushing = this.flushLastSeen().catch(this.onError).finally(() => (this.flushing = undefined))
    }, LAST_SEEN_INTERVAL_MS)
    this.timer.unref()
  }

  async apply(events: readonly WireEvent[]): Promise<void> {
    const upserts: Promise<unknown>[] = []
    const lastSeen = this.seen
    for (const e of events) {
      if (e.type === 'clientConnected') {
        const at = new Date(e.ts)
        const set: Partial<PresenceDocument> = { online: true, epoch: e.epoch, brokerId: e.brokerId, since: at, lastSeen: at }
        // each connect describes the connection as it is now: an absent username or
        // address clears the previous connection's, or presence would show a stale login
        const unset: ('remoteAddress' | 'username')[] = []
        if (e.remoteAddress !== undefined) set.remoteAddress = e.remoteAddress
        else unset.push('remoteAddress')
        if (e.username !== undefined) set.username = e.username
        else unset.push('username')
        upserts.push(this.connect(e.clientId, e.epoch, set, unset))
      } else if (e.type === 'clientDisconnected') {
        const at = new Date(e.ts)
        upserts.push(
          this.serial(e.clientId, () => this.conditional(e.clientId, { $lte: e.epoch }, {
            online: false,
            epoch: e.epoch,
            brokerId: e.brokerId,
            lastSeen: at,
            lastDisconnectAt: at,
            lastDisconnectReason: e.reason,
          })),
        )
      } else if (this.lastSeenStore && 'clientId' in e && typeof e.clientId === 'string' && e.type !== 'connectionError') {
        const ts = lastSeen.get(e.clientId)
        if (ts === undefined || e.ts > ts) lastSeen.set(e.clientId, e.ts)
      }
    }
    await Promise.all(upserts)
    // a job still running after close (past the drain timeout) has no interval to write for it
    if (this.closed) await this.flushLastSeen()
  }

  /**
   * When each client was last seen: its document's `lastSeen` (last connect or
   * disconnect), moved forward to its latest other event from the last-seen set.
   */
  async lastSeen(docs: readonly Pick<PresenceDocument, '_id' | 'lastSeen'>[]): Promise<Map<string, Date>> {
    const out = new Map(docs.map((d) => [d._id, d.lastSeen] as const))
    if (!this.lastSeenStore || docs.length === 0) return out
    const scores = await this.lastSeenStore.redis.zmscore(this.lastSeenStore.key, ...docs.map((d) => d._id))
    docs.forEach((d, i) => {
      const ms = Number(scores[i] ?? Number.NaN)
      if (Number.isFinite(ms) && ms > d.lastSeen.getTime()) out.set(d._id, new Date(ms))
    })
    return out
  }

  /** Writes the pending last-seen times in one command; a failed write is kept for the next flush. */
  private async flushLastSeen(): Promise<void> {
    const store = this.lastSeenStore
    const pending = this.seen
    if (!store || pending.size === 0) return
    this.seen = new Map()
    const args: (string | number)[] = []
    for (const [clientId, ts] of pending) args.push(ts, clientId)
    try {
      // GT: a score only moves forward, whichever worker writes last (Redis 6.2+)
      await store.redis.zadd(store.key, 'GT', ...args)
    } catch (err) {
      for (const [clientId, ts] of pending) this.seen.set(clientId, Math.max(this.seen.get(clientId) ?? 0, ts))
      throw err
    }
    // bounded by the clients active within LAST_SEEN_KEEP_MS; older ones have their disconnect in the store
    if (Date.now() - this.trimmedAt > 60_000) {
      this.trimmedAt = Date.now()
      await store.redis.zremrangebyscore(store.key, '-inf', Date.now() - LAST_SEEN_KEEP_MS)
    }
  }

  /** Stops the interval after writing what is pending; later last-seen times are written at once. */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    await this.flushing
    await this.flushLastSeen()
  }

  /**
   * A client's first connect is an insert: O(1) on every server, where the conditional
   * upsert below scans the collection on FerretDB 1.x (a fleet of 10,000 new devices
   * cost 10,000 scans of a growing collection). A client with a document already gets
   * the duplicate key, and the conditional upsert decides against its epoch as before.
   */
  private connect(clientId: string, epoch: number, set: Partial<PresenceDocument>, unset: readonly (keyof PresenceDocument)[]): Promise<void> {
    return this.serial(clientId, async () => {
      try {
        await this.collection.insertOne({ ...set, _id: clientId } as PresenceDocument)
        return
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
      await this.conditional(clientId, { $lt: epoch }, set, unset)
    })
  }

  /** Applies if the stored epoch is older (connect) or not newer (disconnect); a newer document makes the upsert hit the duplicate key: stale, ignored. */
  private async conditional(clientId: string, epoch: { $lt: number } | { $lte: number }, set: Partial<PresenceDocument>, unset: readonly (keyof PresenceDocument)[] = []): Promise<void> {
    const update: UpdateFilter<PresenceDocument> = { $set: set }
    if (unset.length > 0) update.$unset = Object.fromEntries(unset.map((k) => [k, true as const]))
    try {
      await this.collection.updateOne({ _id: clientId, epoch }, update, { upsert: true })
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
    }
  }

  /** Runs writes for one client one after another, in the order they were asked for. */
  private serial(clientId: string, write: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(clientId) ?? Promise.resolve()
    const next = previous.catch(() => {}).then(write)
    const tail = next.catch(() => {})
    this.chains.set(clientId, tail)
    void tail.then(() => {
      if (this.chains.get(clientId) === tail) this.chains.delete(clientId)
    })
    return next
  }
}

import type { Collection, Db, UpdateFilter } from 'mongodb'
import type { DisconnectReason } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'
import { isDuplicateKey } from './mongo-errors.ts'
import { ensureIndexes } from './indexes.ts'

export const PRESENCE_COLLECTION = 'presence'

/** How often pending `lastSeen` times are written, from setup() on. */
const LAST_SEEN_INTERVAL_MS = 1000

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

/*
 * Who is online. Connected and disconnected events travel in different queues and
 * may be processed in any order, or twice; the connection epoch decides:
 * - clientConnected(e) applies only if the stored epoch is older than e;
 * - clientDisconnected(e) applies if the stored epoch is e or older, and marks the
 *   epoch as ended, so a late clientConnected(e) cannot revive it.
 * A conditional upsert that finds a newer document hits the duplicate key on _id:
 * that is the "ignore the stale event" path.
 *
 * MongoDB applies each conditional update atomically. FerretDB 1.24 on SQLite does
 * not (measured: 183 of 300 concurrent pairs lost an update), so writes for one
 * client are also chained within this process; across worker processes only a
 * server with atomic single-document updates keeps presence exact.
 *
 * `lastSeen` from other events (published, delivered, ...) is written at most once
 * per flush interval per client, not awaited by the job: one write per published
 * message was a third of the pipeline's store writes (docs/performance.md).
 */
export class Presence {
  readonly collection: Collection<PresenceDocument>
  private readonly chains = new Map<string, Promise<void>>()
  /** Newest event time per client not yet written as `lastSeen`. */
  private seen = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  /** The interval's flush while it runs: the next tick skips, close() waits for it. */
  private flushing: Promise<void> | undefined
  private closed = false
  private readonly onError: (err: unknown) => void

  /** @param onError a failed periodic `lastSeen` write (kept for the next one) */
  constructor(db: Db, opts: { onError?: (err: unknown) => void } = {}) {
    this.collection = db.collection<PresenceDocument>(PRESENCE_COLLECTION)
    this.onError = opts.onError ?? (() => {})
  }

  async setup(): Promise<void> {
    await ensureIndexes(this.collection, [{ key: { online: 1, brokerId: 1 }, name: 'online_broker' }])
    if (this.timer || this.closed) return
    this.timer = setInterval(() => {
      // with the store down a flush waits out its timeout: never two at once
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
        upserts.push(this.upsertIf(e.clientId, { $lt: e.epoch }, set, unset))
      } else if (e.type === 'clientDisconnected') {
        const at = new Date(e.ts)
        upserts.push(
          this.upsertIf(e.clientId, { $lte: e.epoch }, {
            online: false,
            epoch: e.epoch,
            brokerId: e.brokerId,
            lastSeen: at,
            lastDisconnectAt: at,
            lastDisconnectReason: e.reason,
          }),
        )
      } else if ('clientId' in e && typeof e.clientId === 'string' && e.type !== 'connectionError') {
        lastSeen.set(e.clientId, Math.max(lastSeen.get(e.clientId) ?? 0, e.ts))
      }
    }
    await Promise.all(upserts)
    // a job still running after close (past the drain timeout) has no interval to write for it
    if (this.closed) await this.flushLastSeen()
  }

  /** Writes the pending `lastSeen` times; a failed write is kept for the next flush. */
  private async flushLastSeen(): Promise<void> {
    const pending = this.seen
    if (pending.size === 0) return
    this.seen = new Map()
    const writes = [...pending].map(([clientId, ts]) =>
      this.serial(clientId, async () => {
        await this.collection.updateOne({ _id: clientId }, { $max: { lastSeen: new Date(ts) } })
      }).catch((err: unknown) => {
        this.seen.set(clientId, Math.max(this.seen.get(clientId) ?? 0, ts))
        throw err
      }),
    )
    const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected')
    if (failed) throw failed.reason
  }

  /** Stops the interval after writing what is pending; later `lastSeen` times are written at once. */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    await this.flushing
    await this.flushLastSeen()
  }

  private upsertIf(clientId: string, epoch: { $lt: number } | { $lte: number }, set: Partial<PresenceDocument>, unset: readonly (keyof PresenceDocument)[] = []): Promise<void> {
    const update: UpdateFilter<PresenceDocument> = { $set: set }
    if (unset.length > 0) update.$unset = Object.fromEntries(unset.map((k) => [k, true as const]))
    return this.serial(clientId, async () => {
      try {
        await this.collection.updateOne({ _id: clientId, epoch }, update, { upsert: true })
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
    })
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

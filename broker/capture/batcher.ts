import type { Redis } from 'ioredis'
import type { EventType } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'
import type { Logger } from '../../common/logger.ts'
import { CaptureBacklog, type Gathered } from './backlog.ts'
import { encode, storeEntry } from './encode.ts'
import { Pump, type Flush, type PumpWriter } from './pump.ts'
import type { EventSink, Stored } from './sink.ts'

export interface BatcherOptions {
  /** Connection of the acknowledgement path's HSETs. */
  redis: Redis
  /** A connection of the pump's own (pump.ts); not needed with `pump`. */
  pumpRedis?: Redis
  /** Writes the jobs instead of a Pump on pumpRedis: the pump thread (pump-thread.ts, MQFN_CAPTURE_THREAD=pump). */
  pump?: PumpWriter
  prefix: string
  /** Unique per broker process: makes the job ids of a retried write identical, so Redis keeps one copy. */
  tag: string
  /** The capture store's hash for this tag (capture-store.ts). */
  storeKey: string
  log: Logger
  /** Most events in one BullMQ job. @defaultValue 1000 */
  maxJobEvents: number
  /** Most payload bytes (approximate, encoded) in one BullMQ job. @defaultValue 4 MiB */
  maxJobBytes: number
  /** Events held in memory (waiting + being written) before QoS 0 publishers are made to wait too. */
  maxBacklogEvents: number
  /** Bytes held in memory before QoS 0 publishers are made to wait too. */
  maxBacklogBytes: number
  /** Called after each write of jobs to Redis with its oldest event's capture time (metrics). */
  onWritten?: (oldestTs: number) => void
}

/**
 * How long ready flushes wait for the pump. A pump (its CPU, and Redis running
 * BullMQ's job script) slows the QoS 1 round trips it overlaps; spaced out it
 * overlaps fewer, and under load it takes more flushes at once. Events reach their
 * queue up to this much later. Ping-pong p50 over its floor, one run each on the
 * shared machine: 2 ms 2.9 ×, 5 ms 2.4 ×, 10 ms 1.9 ×, 20 ms 2.3 × (docs/performance.md).
 */
const PUMP_DELAY_MS = 5

/** Stores (HSETs) in flight at once; the second only for a generation someone waits on. */
const MAX_STORES = 2

interface Generation extends Gathered {
  n: number
}

/** A flush in the pump's line: ready once stored (or at once if nobody waits on it). */
interface Pending extends Flush {
  ready: boolean
  events: number
  bytes: number
  oldestTs: number
}

/*
 * Micro-batching without a timer: the first event after an idle spell schedules a
 * flush on setImmediate, which gathers every packet parsed in the same turn of the
 * event loop (a whole socket read, all sockets that were readable).
 *
 * Two steps. A flush someone waits on (a QoS 1/2 PUBLISH) is first stored: one HSET
 * of its events to this broker's capture store, after which its waiters are called
 * (PUBACK / PUBREC go out): one Redis round trip, no job script. Every flush then
 * goes to the pump, in flush order, which writes as BullMQ jobs all flushes ready by
 * then (large batches under load), deleting the stored entries in the same MULTI.
 * Flushes nobody waits on skip the store. An event counts against the backlog bound
 * until its job is written.
 *
 * Each write is retried until Redis takes it. Stores run one at a time, except that
 * a generation with waiters may start beside one in flight, so a publish never waits
 * behind another's round trip. Jobs are written in flush order, one pump at a time,
 * so each queue receives a client's events in the order captured.
 */
export class EventBatcher implements EventSink {
  private readonly opts: BatcherOptions
  private readonly pump: PumpWriter
  private current: Generation
  private generations = 0
  private stores = 0
  private scheduled = false
  private readonly held: CaptureBacklog
  private readonly line: Pending[] = []
  private pumping = false
  private pumpTimer: NodeJS.Timeout | undefined
  private closed = false
  // checked once: a disabled debug call would still build its object for every event
  private readonly debug: boolean

  constructor(opts: BatcherOptions) {
    this.opts = opts
    if (!opts.pump && !opts.pumpRedis) throw new Error('EventBatcher: pumpRedis or pump is required')
    this.pump = opts.pump ?? new Pump({ ...opts, redis: opts.pumpRedis as Redis })
    this.held = new CaptureBacklog(opts.maxBacklogEvents, opts.maxBacklogBytes)
    this.current = this.newGeneration()
    this.debug = opts.log.isLevelEnabled('debug')
  }

  /** Events and bytes held in memory, not yet in BullMQ. */
  get backlog(): { events: number; bytes: number } {
    return this.held.held
  }

  /** Events captured so far, per type (metrics). */
  get captured(): Record<EventType, number> {
    return this.held.captured
  }

  /** True when the backlog bound is reached: callers that can wait (publishers) should. */
  get saturated(): boolean {
    return this.held.saturated
  }

  /**
   * Queues one event. `onStored` is called once Redis holds it (or with an error if
   * the batcher is closed first): QoS 1/2 acknowledgements wait on it.
   */
  capture(event: WireEvent, bytes: number, onStored?: Stored): void {
    if (this.closed) {
      onStored?.(new Error('event capture is closed'))
      return
    }
    this.held.hold(this.current, event, bytes, onStored)
    // at debug level `grep <eventId>` finds the broker's side of an event too
    if (this.debug) this.opts.log.debug({ eventId: event.id, clientId: 'clientId' in event ? event.clientId : undefined, type: event.type }, 'event captured')
    this.schedule()
  }

  /** Calls `cb` once the backlog is below its bound again (at once if it is). */
  whenNotSaturated(cb: Stored): void {
    this.held.whenNotSaturated(cb)
  }

  /** Resolves when everything captured so far is in BullMQ. */
  async flushed(): Promise<void> {
    await this.held.idle()
  }

  /** Stops accepting events after flushing what was captured. Safe to call twice. */
  async close(): Promise<void> {
    await this.flushed()
    this.closed = true
    await this.pump.close()
  }

  private newGeneration(): Generation {
    return { n: ++this.generations, events: [], bytes: 0, waiters: [] }
  }

  /** Whether the current generation may be flushed now (see the class comment). */
  private mayStart(): boolean {
    const g = this.current
    if (g.events.length === 0) return false
    // a flush nobody waits on needs no store: it joins the pump's line at once
    return g.waiters.length === 0 || this.stores < MAX_STORES
  }

  private schedule(): void {
    if (this.scheduled || !this.mayStart()) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      if (this.mayStart()) void this.flush()
    })
  }

  private async flush(): Promise<void> {
    const g = this.current
    this.current = this.newGeneration()
    const stored = g.waiters.length > 0
    const p: Pending = { ...encode(g.events, this.opts.maxJobEvents, this.opts.maxJobBytes), n: g.n, stored, ready: !stored, events: g.events.length, bytes: g.bytes, oldestTs: (g.events[0] as WireEvent).ts }
    this.line.push(p)
    if (stored) {
      this.stores++
      await this.retrying(g.events.length, () => this.storeEntry(p))
      p.ready = true
      for (const w of g.waiters) w(null)
      this.stores--
    }
    this.runPump()
    if (this.mayStart()) this.schedule()
  }

  private async storeEntry(p: Pending): Promise<void> {
    await this.opts.redis.hset(this.opts.storeKey, String(p.n), storeEntry(p))
  }

  /** Starts a pump PUMP_DELAY_MS from now unless one is running or due. */
  private runPump(): void {
    if (this.pumping || this.pumpTimer) return
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = undefined
      void this.pumpNow()
    }, PUMP_DELAY_MS)
  }

  /** Writes every ready flush at the head of the line as jobs, one pump at a time. */
  private async pumpNow(): Promise<void> {
    if (this.pumping) return
    let k = 0
    while (k < this.line.length && (this.line[k] as Pending).ready) k++
    if (k === 0) return
    this.pumping = true
    const batch = this.line.splice(0, k)
    const events = batch.reduce((n, f) => n + f.events, 0)
    let attempt = 0
    await this.retrying(events, () => this.pump.write(batch, attempt++ > 0))
    this.opts.onWritten?.((batch[0] as Pending).oldestTs)
    this.pumping = false
    this.held.release(events, batch.reduce((n, f) => n + f.bytes, 0))
    this.held.wake()
    if (this.line.length > 0) this.runPump()
    if (this.mayStart()) this.schedule()
  }

  private async retrying(events: number, write: () => Promise<void>): Promise<void> {
    let delay = 50
    for (;;) {
      try {
        await write()
        return
      } catch (err) {
        this.opts.log.error({ err, events }, 'event capture: writing to Redis failed, retrying')
        await new Promise((r) => setTimeout(r, delay))
        delay = Math.min(delay * 2, 2000)
      }
    }
  }
}

import { Job, type Queue } from 'bullmq'
import { EVENT_TYPES, type EventType } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'
import { BATCH_JOB_OPTIONS, JOB_BATCH, type BatchJobData } from '../../common/queues.ts'
import type { Logger } from '../../common/logger.ts'

export interface BatcherOptions {
  queueFor: (type: EventType) => Queue<BatchJobData>
  /** Unique per broker process: makes the job ids of a retried flush identical, so Redis keeps one copy. */
  tag: string
  log: Logger
  /** Most events in one BullMQ job. @defaultValue 1000 */
  maxJobEvents: number
  /** Most payload bytes (approximate, encoded) in one BullMQ job. @defaultValue 4 MiB */
  maxJobBytes: number
  /** Events held in memory (waiting + being written) before QoS 0 publishers are made to wait too. */
  maxBacklogEvents: number
  /** Bytes held in memory before QoS 0 publishers are made to wait too. */
  maxBacklogBytes: number
  /** Called after each write to Redis with its oldest event's capture time (metrics). */
  onWritten?: (oldestTs: number) => void
}

/** Flushes written at once; the second only for a generation someone waits on. */
const MAX_IN_FLIGHT = 2

type Stored = (err: Error | null) => void

interface Generation {
  n: number
  events: WireEvent[]
  bytes: number
  waiters: Stored[]
}

/*
 * Micro-batching without a timer: the first event after an idle spell schedules a
 * flush on setImmediate, which gathers every packet parsed in the same turn of the
 * event loop (a whole socket read, all sockets that were readable). While a flush is
 * in flight new events pile up and go out together when it returns. Low load gets
 * one Redis round trip of latency; high load gets large batches.
 *
 * Each flush is retried until Redis takes it, and an event is acknowledged (its
 * waiter called) only once Redis holds it. One flush at a time, except that a
 * generation someone waits on (a QoS 1/2 PUBLISH) may start beside one in flight:
 * otherwise a publish arriving while another client's `delivered` event is being
 * written waits for two round trips, which doubled QoS 1 ping-pong latency. QoS 0
 * and other events never wait on an acknowledgement, so they keep the single
 * flush and its large batches. Both flushes go over one connection, so Redis
 * stores them in the order they were sent; only a failed write that is retried
 * after a later one succeeded lands out of order, which `seq` shows.
 */
export class EventBatcher {
  private readonly opts: BatcherOptions
  private current: Generation
  private generations = 0
  /** Flushes being written: at most MAX_IN_FLIGHT, the second only for a generation with waiters. */
  private inFlight = 0
  private scheduled = false
  private heldEvents = 0
  private heldBytes = 0
  private drainWaiters: Stored[] = []
  private closed = false
  private idleWaiters: (() => void)[] = []
  /** Events captured so far, per type: read by the metrics at scrape time, so capture pays one increment. */
  readonly captured = Object.fromEntries(EVENT_TYPES.map((t) => [t, 0])) as Record<EventType, number>
  // checked once: a disabled debug call would still build its object for every event
  private readonly debug: boolean

  constructor(opts: BatcherOptions) {
    this.opts = opts
    this.current = this.newGeneration()
    this.debug = opts.log.isLevelEnabled('debug')
  }

  /** Events and bytes held in memory, not yet stored in Redis. */
  get backlog(): { events: number; bytes: number } {
    return { events: this.heldEvents, bytes: this.heldBytes }
  }

  /** True when the backlog bound is reached: callers that can wait (publishers) should. */
  get saturated(): boolean {
    return this.heldEvents >= this.opts.maxBacklogEvents || this.heldBytes >= this.opts.maxBacklogBytes
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
    const g = this.current
    g.events.push(event)
    g.bytes += bytes
    if (onStored) g.waiters.push(onStored)
    this.heldEvents++
    this.heldBytes += bytes
    this.captured[event.type]++
    // at debug level `grep <eventId>` finds the broker's side of an event too
    if (this.debug) this.opts.log.debug({ eventId: event.id, clientId: 'clientId' in event ? event.clientId : undefined, type: event.type }, 'event captured')
    this.schedule()
  }

  /** Calls `cb` once the backlog is below its bound again (at once if it is). */
  whenNotSaturated(cb: Stored): void {
    if (!this.saturated) cb(null)
    else this.drainWaiters.push(cb)
  }

  /** Resolves when everything captured so far is in Redis. */
  async flushed(): Promise<void> {
    if (this.heldEvents === 0 && this.inFlight === 0) return
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
  }

  /** Stops accepting events after flushing what was captured. Safe to call twice. */
  async close(): Promise<void> {
    await this.flushed()
    this.closed = true
  }

  private newGeneration(): Generation {
    return { n: ++this.generations, events: [], bytes: 0, waiters: [] }
  }

  /** Whether the current generation may be written now (see the class comment). */
  private mayStart(): boolean {
    if (this.current.events.length === 0) return false
    return this.inFlight === 0 || (this.inFlight < MAX_IN_FLIGHT && this.current.waiters.length > 0)
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
    this.inFlight++
    const g = this.current
    this.current = this.newGeneration()
    let delay = 50
    for (;;) {
      try {
        await this.write(g)
        break
      } catch (err) {
        this.opts.log.error({ err, events: g.events.length }, 'event capture: writing to Redis failed, retrying')
        await new Promise((r) => setTimeout(r, delay))
        delay = Math.min(delay * 2, 2000)
      }
    }
    this.opts.onWritten?.((g.events[0] as WireEvent).ts)
    this.heldEvents -= g.events.length
    this.heldBytes -= g.bytes
    for (const w of g.waiters) w(null)
    this.inFlight--
    if (!this.saturated && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters
      this.drainWaiters = []
      for (const w of waiters) w(null)
    }
    if (this.mayStart()) void this.flush()
    else if (this.inFlight === 0 && this.current.events.length === 0) for (const w of this.idleWaiters.splice(0)) w()
  }

  /*
   * Each job is one EVALSHA of BullMQ's add script, sent straight on the shared
   * connection (so Redis runs them in the order sent). Neither Queue.addBulk (a pipeline
   * per queue) nor one pipeline for the flush: ioredis copies every BullMQ script
   * command onto each new pipeline object, and a QoS 1 flush holds two types
   * (published, delivered). `npx tsx bench/capture-write.ts`: a flush of two
   * 50-event jobs 888 µs of CPU with addBulk, 802 with one pipeline, 515 like this.
   */
  private async write(g: Generation): Promise<void> {
    const byType = new Map<EventType, WireEvent[]>()
    for (const e of g.events) {
      const list = byType.get(e.type)
      if (list) list.push(e)
      else byType.set(e.type, [e])
    }
    const jobs: Job<BatchJobData>[] = []
    for (const [type, events] of byType) {
      const queue = this.opts.queueFor(type)
      let chunk: WireEvent[] = []
      let chunkBytes = 0
      const push = () => {
        const jobId = `${this.opts.tag}.${g.n}.${jobs.length}`
        // the id is the constructor's fifth argument (as Job.create passes it): opts.jobId alone is not used
        jobs.push(new Job(queue, JOB_BATCH, { v: 1, events: chunk }, { ...BATCH_JOB_OPTIONS, jobId }, jobId))
        chunk = []
        chunkBytes = 0
      }
      for (const e of events) {
        const size = e.type === 'published' ? e.payload.length + 200 : 200
        if (chunk.length > 0 && (chunk.length >= this.opts.maxJobEvents || chunkBytes + size > this.opts.maxJobBytes)) push()
        chunk.push(e)
        chunkBytes += size
      }
      push()
    }
    const first = g.events[0]
    if (!first) return
    // every queue of the broker shares one connection
    const client = await this.opts.queueFor(first.type).getBackend().client
    // each inside a promise: a synchronous throw of one must not leave the others' rejections unhandled
    await Promise.all(jobs.map((job) => Promise.resolve().then(() => job.addJob(client))))
  }
}

import { Worker } from 'node:worker_threads'
import type { EventType } from '../../common/event-types.ts'
import { errorMessage, mqfnError } from '../../common/errors.ts'
import type { WireEvent } from '../../common/events.ts'
import type { Logger } from '../../common/logger.ts'
import { threadEntry } from '../../common/thread-entry.ts'
import { within } from '../../common/within.ts'
import { CaptureBacklog, type Gathered } from './backlog.ts'
import { ALIVE_EVERY_MS, type FromThread, type ThreadSetup, type ToThread } from './capture-thread-messages.ts'
import { newTag, type CaptureOutput, type CaptureSettings } from './output.ts'
import type { EventSink, Stored } from './sink.ts'

const ENTRY = { name: 'capture', source: 'broker/capture/capture-thread.ts', bundle: './capture-thread.js' }

/** More deaths than this within RESTART_WINDOW_MS and the broker stops. */
const MAX_RESTARTS = 3
const RESTART_WINDOW_MS = 60_000
/** A thread silent this long (its event loop stuck) is ended and replaced like one that died. */
const HANG_MS = 10 * ALIVE_EVERY_MS
/** How long a closing thread may take past its flush timeout before it is terminated. */
const CLOSE_GRACE_MS = 2000

/** A flush handed to the thread and not yet reported written. */
interface Sent {
  id: number
  json: string
  events: number
  bytes: number
  /** Acknowledgements waiting for its store; emptied once called. */
  waiters: Stored[]
  /** The thread reported it stored: it is in that thread's capture store, durable. */
  stored: boolean
  /** Events received by this thread up to and including this flush. */
  end: number
}


/*
 * The broker's side of the capture thread (MQFN_CAPTURE_THREAD=all). Events are gathered
 * per turn of the event loop as the batcher gathers them (setImmediate), then handed
 * over as one JSON string; the thread stores, pumps and recovers exactly as the
 * batcher does on this thread (output.ts). What stays here: the backlog bound (so
 * publishers are held back on this thread, by TCP backpressure) and the waiters.
 *
 * A thread that dies, or stays silent for HANG_MS, is restarted with a new store tag.
 * Flushes it had reported stored are in its store, which recovery (its successor's, or
 * another broker's) takes once the alive key it renewed expires (capture-store.ts,
 * ≤ 15 s); every other flush it had not reported written is
 * handed to the new thread, waiters and all. So nothing acknowledged is lost and no
 * publish waits forever; a flush the old thread wrote just before dying may be queued
 * twice (the same event ids: the event log keeps one). Past MAX_RESTARTS deaths in a
 * minute every waiter gets MQFN_ERR_CAPTURE_THREAD and `onFatal` stops the broker.
 */
export class CaptureThreadSink implements EventSink, CaptureOutput {
  private worker!: Worker
  private current: Gathered = { events: [], bytes: 0, waiters: [] }
  private scheduled = false
  private nextId = 0
  /** Events handed to the current thread so far. */
  private handed = 0
  private readonly sent: Sent[] = []
  private readonly byId = new Map<number, Sent>()
  private readonly held: CaptureBacklog
  private deaths: number[] = []
  private closing = false
  /** A thread came up once: later deaths are restarted. */
  private started = false
  private failed: Error | undefined
  private exited: Promise<void> = Promise.resolve()
  private closed: ((flushed: boolean) => void) | undefined
  private readonly debug: boolean

  constructor(private readonly entry: URL, private readonly settings: CaptureSettings, private readonly logLevel: string, private readonly log: Logger, private readonly onWritten: ((oldestTs: number) => void) | undefined, private readonly onFatal: (err: Error) => void) {
    this.debug = log.isLevelEnabled('debug')
    this.held = new CaptureBacklog(settings.captureMaxBacklogEvents, settings.captureMaxBacklogBytes)
  }

  get sink(): EventSink {
    return this
  }

  get backlog(): { events: number; bytes: number } {
    return this.held.held
  }

  get saturated(): boolean {
    return this.held.saturated
  }

  /** Events captured so far, per type (metrics). */
  get captured(): Record<EventType, number> {
    return this.held.captured
  }

  capture(event: WireEvent, bytes: number, onStored?: Stored): void {
    if (this.closing || this.failed) {
      onStored?.(this.failed ?? new Error('event capture is closed'))
      return
    }
    this.held.hold(this.current, event, bytes, onStored)
    if (this.debug) this.log.debug({ eventId: event.id, clientId: 'clientId' in event ? event.clientId : undefined, type: event.type }, 'event captured')
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => this.flush())
    }
  }

  whenNotSaturated(cb: Stored): void {
    if (this.failed) cb(this.failed)
    else this.held.whenNotSaturated(cb)
  }

  /** Starts the thread; resolves once its store is registered, rejects if it dies before. */
  async start(): Promise<void> {
    const up = await this.spawn()
    if (!up) throw mqfnError('MQFN_ERR_CAPTURE_THREAD', 'stopped while starting (its error is logged)')
  }

  async close(flushTimeoutMs: number): Promise<boolean> {
    if (this.failed) return false
    const started = Date.now()
    let flushed = await within(flushTimeoutMs, this.held.idle())
    this.closing = true
    const left = Math.max(0, flushTimeoutMs - (Date.now() - started))
    let reply = false
    this.closed = (ok) => (reply = ok)
    this.post({ kind: 'close', flushTimeoutMs: left })
    // the thread ends by itself once it has closed its store and connections
    if (!(await within(left + CLOSE_GRACE_MS, this.exited))) await this.worker.terminate()
    return flushed && reply && this.held.held.events === 0
  }

  /** Ends the thread as a crash would (tests: a thread that dies mid-load). */
  async kill(): Promise<void> {
    await this.worker.terminate()
  }

  private flush(): void {
    this.scheduled = false
    const g = this.current
    if (g.events.length === 0) return
    this.current = { events: [], bytes: 0, waiters: [] }
    const s: Sent = { id: ++this.nextId, json: JSON.stringify(g.events), events: g.events.length, bytes: g.bytes, waiters: g.waiters, stored: false, end: 0 }
    this.sent.push(s)
    this.byId.set(s.id, s)
    this.hand(s)
  }

  private hand(s: Sent): void {
    this.handed += s.events
    s.end = this.handed
    this.post({ kind: 'flush', id: s.id, json: s.json, wait: s.waiters.length > 0 })
  }

  private post(message: ToThread): void {
    this.worker.postMessage(message)
  }

  /** Resolves true once the thread's store is registered, false if it ended first. */
  private spawn(): Promise<boolean> {
    const setup: ThreadSetup = { ...pick(this.settings), tag: newTag(this.settings.brokerId), logLevel: this.logLevel }
    const worker = new Worker(this.entry, { workerData: setup, execArgv: [] })
    this.worker = worker
    this.handed = 0
    let ready: (up: boolean) => void = () => {}
    const started = new Promise<boolean>((resolve) => (ready = resolve))
    let cause: unknown
    let heard = Date.now()
    let ticked = heard
    const watchdog = setInterval(() => {
      const now = Date.now()
      // this thread was the one stuck: the thread's messages wait behind this timer
      if (now - ticked > 2 * ALIVE_EVERY_MS) heard = now
      ticked = now
      if (now - heard < HANG_MS || this.closing) return
      cause = new Error(`silent for ${HANG_MS / 1000} s (its event loop is stuck); ended`)
      void worker.terminate()
    }, ALIVE_EVERY_MS)
    watchdog.unref()
    worker.on('message', (m: FromThread) => {
      if (worker !== this.worker) return
      heard = Date.now()
      if (m.kind === 'alive') return
      if (m.kind === 'ready') ready(true)
      else if (m.kind === 'stored') this.stored(m.id, m.error)
      else if (m.kind === 'written') this.written(m.events, m.oldestTs)
      else this.closed?.(m.flushed)
    })
    worker.on('error', (err) => (cause = err))
    this.exited = new Promise((resolve) => worker.once('exit', (code) => {
      clearInterval(watchdog)
      resolve()
      ready(false)
      if (!this.closing && worker === this.worker && this.started) this.died(setup.tag, code, cause)
      else if (!this.started) this.log.error({ err: cause, code }, 'event capture thread stopped while starting')
    }))
    void started.then((up) => (this.started ||= up))
    return started
  }

  private stored(id: number, error: string | undefined): void {
    const s = this.byId.get(id)
    if (!s) return
    if (!error) s.stored = true
    const err = error ? new Error(error) : null
    for (const w of s.waiters.splice(0)) w(err)
  }

  private written(events: number, oldestTs: number): void {
    let k = 0
    while (k < this.sent.length && (this.sent[k] as Sent).end <= events) k++
    if (k === 0) return
    for (const s of this.sent.splice(0, k)) this.forget(s)
    this.onWritten?.(oldestTs)
    this.released()
  }

  private forget(s: Sent): void {
    this.byId.delete(s.id)
    this.held.release(s.events, s.bytes)
  }

  private released(): void {
    this.held.wake()
  }

  private died(tag: string, code: number, cause: unknown): void {
    const now = Date.now()
    this.deaths = this.deaths.filter((t) => now - t < RESTART_WINDOW_MS).concat(now)
    // flushes it stored stay in its store: recovered once its alive key expires
    const stored = this.sent.filter((s) => s.stored)
    for (const s of stored) this.forget(s)
    const resend = this.sent.filter((s) => !s.stored)
    const detail = `stopped (exit code ${code}${cause === undefined ? '' : `, ${errorMessage(cause)}`})`
    if (this.deaths.length > MAX_RESTARTS) {
      const err = mqfnError('MQFN_ERR_CAPTURE_THREAD', `${detail}, ${this.deaths.length} times within ${RESTART_WINDOW_MS / 1000} s; not restarted`)
      this.failed = err
      this.log.error({ err, tag, lost: resend.reduce((n, s) => n + s.events, 0) + this.current.events.length }, 'event capture thread keeps dying: QoS 1/2 publishes waiting on it are refused; QoS 0 events it held are lost')
      for (const s of [...resend, this.current]) for (const w of s.waiters.splice(0)) w(err)
      this.held.fail(err)
      this.onFatal(err)
      return
    }
    this.log.error({ err: cause, code, tag, storedFlushes: stored.length, resent: resend.length }, 'event capture thread died: restarting it; what it stored is recovered from its store, the rest is handed to the new thread')
    this.sent.length = 0
    void this.spawn()
    for (const s of resend) {
      this.sent.push(s)
      this.hand(s)
    }
    this.released()
  }
}

/** The settings the thread needs, as plain data (workerData is cloned; a frozen config with more keys is not needed there). */
function pick(s: CaptureSettings): CaptureSettings {
  return {
    redisUrl: s.redisUrl, brokerId: s.brokerId, prefix: s.prefix,
    captureMaxJobEvents: s.captureMaxJobEvents, captureMaxJobBytes: s.captureMaxJobBytes,
    captureMaxBacklogEvents: s.captureMaxBacklogEvents, captureMaxBacklogBytes: s.captureMaxBacklogBytes,
  }
}

/** Starts the capture thread (MQFN_CAPTURE_THREAD=all). */
export async function startCaptureThread(settings: CaptureSettings & { logLevel: string }, log: Logger, onWritten: ((oldestTs: number) => void) | undefined, onFatal: (err: Error) => void): Promise<CaptureThreadSink> {
  const sink = new CaptureThreadSink(await threadEntry(ENTRY), settings, settings.logLevel, log, onWritten, onFatal)
  await sink.start()
  return sink
}

import { Worker } from 'node:worker_threads'
import type { Logger } from '../../common/logger.ts'
import { threadEntry } from '../../common/thread-entry.ts'
import { within } from '../../common/within.ts'
import { ALIVE_EVERY_MS } from './capture-thread-messages.ts'
import type { Flush, PumpOptions, PumpWriter } from './pump.ts'

/** To the pump thread: write these flushes (Pump.write), or close. */
export type PumpToThread = { kind: 'write'; id: number; flushes: Flush[]; retry: boolean } | { kind: 'close' }
/** From it: still alive (every ALIVE_EVERY_MS), or write `id` done (or failed, with `error`). */
export type PumpFromThread = { kind: 'alive' } | { kind: 'done'; id: number; error?: string }

const ENTRY = { name: 'pump', source: 'broker/capture/capture-pump-thread.ts', bundle: './capture-pump-thread.js' }
/** A thread silent this long (its event loop stuck) is ended: its writes fail and are retried. */
const HANG_MS = 10 * ALIVE_EVERY_MS
/** How long a closing thread may take to close its connection before it is terminated. */
const CLOSE_MS = 2000

type Setup = Omit<PumpOptions, 'redis'> & { redisUrl: string; brokerId: string }

/*
 * MQFN_CAPTURE_THREAD=pump: the batcher's pump (pump.ts) in a worker thread; the
 * store's HSET, the acknowledgements, the backlog and recovery stay on the broker's
 * thread (batcher.ts). The flushes cross as their encoded groups (strings).
 *
 * A write whose thread dies, or stays silent for HANG_MS, fails; the batcher logs it
 * and retries it as it retries a write Redis refused (backoff to 2 s), with retry =
 * true, so the pump first checks whether the transaction already ran (pump.ts); the
 * retry starts a new thread. The job ids are the same either way: no job is added
 * twice, and nothing acknowledged leaves the capture store before its jobs exist. A
 * thread that keeps dying makes the backlog grow until publishers are held back, as
 * a Redis outage does.
 */
export class ThreadPump implements PumpWriter {
  private worker: Worker | undefined
  private next = 0
  private readonly pending = new Map<number, { resolve(): void; reject(err: Error): void }>()
  private closing = false

  constructor(private readonly entry: URL, private readonly setup: Setup, private readonly log: Logger) {}

  start(): void {
    this.worker ??= this.spawn()
  }

  write(flushes: readonly Flush[], retry: boolean): Promise<void> {
    const worker = this.worker ?? this.spawn()
    const id = ++this.next
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }))
    worker.postMessage({ kind: 'write', id, retry, flushes: flushes.map((f) => ({ n: f.n, stored: f.stored, groups: f.groups })) } satisfies PumpToThread)
    return done
  }

  async close(): Promise<void> {
    this.closing = true
    const worker = this.worker
    if (!worker) return
    const exited = new Promise((resolve) => worker.once('exit', resolve))
    worker.postMessage({ kind: 'close' } satisfies PumpToThread)
    if (!(await within(CLOSE_MS, exited))) await worker.terminate()
  }

  /** Ends the thread as a crash would (tests). */
  async kill(): Promise<void> {
    await this.worker?.terminate()
  }

  private spawn(): Worker {
    const worker = new Worker(this.entry, { workerData: this.setup, execArgv: [] })
    this.worker = worker
    let heard = Date.now()
    let ticked = heard
    let cause: unknown
    const watchdog = setInterval(() => {
      const now = Date.now()
      // this thread was the one stuck: the thread's messages wait behind this timer
      if (now - ticked > 2 * ALIVE_EVERY_MS) heard = now
      ticked = now
      if (now - heard > HANG_MS) {
        cause = new Error(`silent for ${HANG_MS / 1000} s`)
        void worker.terminate()
      }
    }, ALIVE_EVERY_MS)
    watchdog.unref()
    worker.on('message', (m: PumpFromThread) => {
      heard = Date.now()
      if (m.kind !== 'done') return
      const p = this.pending.get(m.id)
      this.pending.delete(m.id)
      if (m.error === undefined) p?.resolve()
      else p?.reject(new Error(m.error))
    })
    worker.on('error', (err) => (cause = err))
    worker.once('exit', (code) => {
      clearInterval(watchdog)
      if (this.worker === worker) this.worker = undefined
      if (this.closing) return
      this.log.error({ err: cause, code }, 'capture pump thread stopped; its writes are retried on a new one')
      const err = new Error('capture pump thread stopped')
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
    })
    return worker
  }
}

/** Starts the pump thread (at once: a thread that cannot start is seen at start-up, in the log). */
export async function createThreadPump(setup: Setup, log: Logger): Promise<ThreadPump> {
  const pump = new ThreadPump(await threadEntry(ENTRY), setup, log)
  pump.start()
  return pump
}

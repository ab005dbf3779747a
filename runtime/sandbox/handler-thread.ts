import { Worker } from 'node:worker_threads'
import { MqfnError, mqfnError } from '../../common/errors.ts'
import type { ResolvedHandlerConfig } from '../handler-config.ts'
import type { FromThread, RunItem, RunOutcome, ThreadSetup } from './messages.ts'

/** `again`: the thread was stopped for another event's sake; run this one elsewhere, no attempt spent. */
export type Settled = RunOutcome | { again: true }

export type Loaded = { ok: true; config: ResolvedHandlerConfig } | { ok: false; error: MqfnError }

/** A module still importing after this is reported as failing to load (a top-level await that never settles). */
export const LOAD_TIMEOUT_MS = 10_000

/** A thread not up after this (its runtime's own modules loading, on a very busy machine) counts as failed. */
const BOOT_TIMEOUT_MS = 60_000

/**
 * The thread reports a timeout itself, on time, whenever its event loop turns; only a
 * thread that is blocked (a loop, a synchronous wait) misses its deadline by this much.
 */
const DEADLINE_GRACE_MS = 1000

/**
 * One handler's worker thread, as the worker sees it: what it is running and until when.
 * The thread ends for one of four reasons, and what is running in it then settles so:
 * a deadline passed (the overdue attempts fail with `timeout`, the others run `again`
 * elsewhere), the heap cap (each fails with `out-of-memory`), the thread exited by
 * itself (`crashed`), or the worker ended it (retired when idle, or closing).
 */
export class HandlerThread {
  readonly loaded: Promise<Loaded>
  private readonly worker: Worker
  private readonly pending = new Map<number, (settled: Settled) => void>()
  private readonly deadlines = new Set<NodeJS.Timeout>()
  private overdue: ReadonlySet<number> | undefined
  private timeoutMs = 0
  private outOfMemory = false
  /** What ended the thread, when it threw before the handler could catch anything (its loader failing). */
  private failure: Error | undefined
  private stopping = false
  private retired = false
  private exited = false

  constructor(entry: URL, private readonly setup: ThreadSetup, private readonly memoryMb: number, hooks: { stuck(thread: HandlerThread): void; ended(thread: HandlerThread): void }) {
    this.worker = new Worker(entry, {
      workerData: setup,
      // V8 stops the thread (ERR_WORKER_OUT_OF_MEMORY) instead of the process when this heap is full
      resourceLimits: { maxOldGenerationSizeMb: memoryMb },
      // none of the test runner's or inspector's flags
      execArgv: [],
    })
    let settleLoad: (loaded: Loaded) => void = () => {}
    this.loaded = new Promise<Loaded>((resolve) => (settleLoad = resolve))
    const failLoad = (detail: string) => settleLoad({ ok: false, error: mqfnError('MQFN_ERR_HANDLER_LOAD', setup.path, detail) })
    const timeLoad = (ms: number, detail: string) => setTimeout(() => {
      failLoad(detail)
      void this.stop()
    }, ms)
    let loadTimer = timeLoad(BOOT_TIMEOUT_MS, `its thread did not start within ${BOOT_TIMEOUT_MS / 1000} s`)
    this.worker.on('message', (message: FromThread) => {
      switch (message.kind) {
        case 'importing':
          // the bound is on the handler's own module: its top-level code, not the thread's start
          clearTimeout(loadTimer)
          loadTimer = timeLoad(LOAD_TIMEOUT_MS, `did not finish loading within ${LOAD_TIMEOUT_MS / 1000} s (a top-level await that never settles, or a loop)`)
          return
        case 'loaded':
          clearTimeout(loadTimer)
          return settleLoad({ ok: true, config: message.config })
        case 'load-failed':
          clearTimeout(loadTimer)
          settleLoad({ ok: false, error: new MqfnError(message.code, message.message) })
          return void this.stop()
        case 'done':
          for (const { id, outcome } of message.results) this.settle(id, outcome)
          if (this.retired && this.pending.size === 0) void this.stop()
          return
        case 'stuck':
          return hooks.stuck(this)
      }
    })
    this.worker.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') this.outOfMemory = true
      else this.failure = err
    })
    this.worker.on('exit', (code) => {
      this.exited = true
      clearTimeout(loadTimer)
      for (const timer of this.deadlines) clearTimeout(timer)
      if (this.outOfMemory) failLoad(`ran out of memory (memoryMb ${memoryMb})`)
      else failLoad(this.failure ? `its thread failed: ${this.failure.message}` : `its thread exited with code ${code} while loading`)
      for (const [id, settle] of this.pending) settle(this.endedWith(id, code))
      this.pending.clear()
      hooks.ended(this)
    })
  }

  /** How the attempt `id` ends when the thread ends under it. */
  private endedWith(id: number, code: number): Settled {
    const failed = (error: MqfnError, timeout?: true): Settled => ({ ok: false, ms: 0, stopped: true, error: { name: error.name, message: error.message }, ...(timeout ? { timeout } : {}) })
    if (this.overdue?.has(id)) return failed(mqfnError('MQFN_ERR_HANDLER_TIMEOUT', this.setup.name, this.timeoutMs), true)
    if (this.outOfMemory) return failed(mqfnError('MQFN_ERR_HANDLER_OUT_OF_MEMORY', this.setup.name, this.memoryMb))
    if (this.overdue || this.stopping) return { again: true }
    return failed(mqfnError('MQFN_ERR_HANDLER_CRASHED', this.setup.name, `its thread exited with code ${code} (process.exit in the handler?)`))
  }

  private settle(id: number, settled: Settled): void {
    const resolve = this.pending.get(id)
    this.pending.delete(id)
    resolve?.(settled)
  }

  get alive(): boolean {
    return !this.exited && !this.stopping
  }

  get running(): number {
    return this.pending.size
  }

  /** Starts these attempts now; each settles through its own callback. */
  run(items: readonly { item: RunItem; settle(settled: Settled): void }[], timeout: number): void {
    for (const { item, settle } of items) this.pending.set(item.id, settle)
    this.worker.postMessage({ kind: 'run', timeout, items: items.map((i) => i.item) })
    const deadline = setTimeout(() => {
      this.deadlines.delete(deadline)
      const late = items.filter((i) => this.pending.has(i.item.id)).map((i) => i.item.id)
      if (late.length === 0 || this.stopping) return
      this.overdue = new Set(late)
      this.timeoutMs = timeout
      void this.stop()
    }, timeout + DEADLINE_GRACE_MS)
    this.deadlines.add(deadline)
  }

  /** No new work; ends once what runs in it has settled (or missed its deadline). */
  retire(): void {
    this.retired = true
    if (this.pending.size === 0) void this.stop()
  }

  /** Ends the thread now; its sockets (ctx.db, ctx.publish) close with it. Safe to call twice. */
  async stop(): Promise<void> {
    this.stopping = true
    if (!this.exited) await this.worker.terminate()
  }
}

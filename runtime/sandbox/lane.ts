import { isMqfnError, mqfnError, type MqfnError } from '../../common/errors.ts'
import type { WireEvent } from '../../common/events.ts'
import type { Logger } from '../../common/logger.ts'
import { threadEntry } from './entry.ts'
import { HandlerThread, type Loaded, type Settled } from './handler-thread.ts'
import type { RunItem, RunOutcome, ThreadSetup } from './messages.ts'

let nextId = 0

/**
 * One handler's way into its thread. Attempts asked for in the same turn of the event
 * loop (a batch job's events) travel in one message, and results come back batched
 * too, so the per-event cost is a share of a message, not a message. A thread that
 * ended (timeout, heap cap, crash) is replaced by a fresh one on the next attempt; one
 * whose handler ignored its abort is retired: it takes no new work and ends once idle.
 */
export class HandlerLane {
  private current: HandlerThread | undefined
  private starting: Promise<HandlerThread | MqfnError> | undefined
  private queue: { item: RunItem; settle(settled: Settled): void }[] = []
  private readonly threads = new Set<HandlerThread>()
  private closed = false

  private memoryMb = 0
  /** The handler's `timeout`, known once its module has loaded. */
  timeoutMs = 30_000

  constructor(private readonly setup: ThreadSetup, private readonly log: Logger) {}

  /** Starts a thread under this heap cap (importing the module) and answers how loading went. */
  async start(memoryMb: number): Promise<Loaded> {
    this.memoryMb = memoryMb
    for (const t of this.threads) t.retire()
    this.current = undefined
    const thread = this.spawn(await threadEntry('handler'))
    const loaded = await thread.loaded
    if (loaded.ok) this.current = thread
    return loaded
  }

  private spawn(entry: URL): HandlerThread {
    const thread = new HandlerThread(entry, this.setup, this.memoryMb, {
      stuck: (t) => {
        this.log.warn({ handler: this.setup.name }, 'handler still running after its timeout and abort: its thread is retired and ends once idle')
        if (this.current === t) this.current = undefined
        t.retire()
      },
      ended: (t) => {
        this.threads.delete(t)
        if (this.current === t) this.current = undefined
      },
    })
    this.threads.add(thread)
    return thread
  }

  /** The thread to run on, started (and its module loaded) if there is none. */
  private thread(): Promise<HandlerThread | MqfnError> {
    if (this.current?.alive) return Promise.resolve(this.current)
    this.starting ??= (async () => {
      const thread = this.spawn(await threadEntry('handler'))
      const loaded = await thread.loaded
      this.starting = undefined
      if (!loaded.ok) return loaded.error
      this.current = thread
      return thread
    })()
    return this.starting
  }

  /** One attempt on one event, in the handler's thread. */
  async run(event: WireEvent, attempt: number): Promise<RunOutcome> {
    for (;;) {
      const settled = await new Promise<Settled>((settle) => {
        if (this.queue.length === 0) setImmediate(() => void this.flush())
        this.queue.push({ item: { id: nextId++, attempt, event }, settle })
      })
      if (!('again' in settled)) return settled
    }
  }

  private async flush(): Promise<void> {
    const batch = this.queue
    this.queue = []
    const thread = this.closed ? mqfnError('MQFN_ERR_HANDLER_CRASHED', this.setup.name, 'the worker is closing') : await this.thread()
    if (thread instanceof Error) {
      for (const { settle } of batch) settle({ ok: false, ms: 0, error: { name: thread.name, ...(isMqfnError(thread) ? { code: thread.code } : {}), message: thread.message } })
      return
    }
    thread.run(batch, this.timeoutMs)
  }

  /** Ends every thread of this handler. */
  async close(): Promise<void> {
    this.closed = true
    await Promise.all([...this.threads].map((t) => t.stop()))
  }
}

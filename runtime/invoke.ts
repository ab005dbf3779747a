import { mqfnError } from '../common/errors.ts'
import type { WireEvent } from '../common/events.ts'
import type { Logger } from '../common/logger.ts'
import type { AttemptError } from '../common/queues.ts'
import { loadedHandler, type LoadedHandler, type LoadFailure } from './load.ts'
import type { HandlerOutcome } from './metrics.ts'
import { HandlerLane } from './sandbox/lane.ts'
import type { ContextSettings } from './sandbox/messages.ts'
import { describeThrown } from './sandbox/thrown.ts'
import type { HandlerFile } from './scan.ts'
import { Semaphore } from './semaphore.ts'
import { DEFAULT_MEMORY_MB } from './handler-config.ts'

/** Told how each attempt that ran went (the worker's metrics). */
export type ObserveRun = (handler: string, outcome: HandlerOutcome, seconds: number) => void

/** The failed attempt of a handler this worker does not run (its file did not load here, or was removed). */
export function notLoaded(handler: string, attempt: number): AttemptError {
  const err = mqfnError('MQFN_ERR_HANDLER_NOT_LOADED', handler)
  return { attempt, at: Date.now(), name: err.name, code: err.code, message: err.message }
}

/** `final`: retrying cannot help (the payload failed the handler's schema). */
export type InvokeResult = { ok: true } | { ok: false; error: AttemptError; final?: true }

/**
 * Runs handlers isolated from the worker's event loop: each handler in a worker thread
 * of its own (runtime/sandbox/), within its concurrency limit, stopped at its timeout
 * and its memory cap. The worker keeps answering, consuming and draining whatever a
 * handler does; a failure is that (event, handler) pair's failed attempt.
 */
export class Invoker {
  private readonly lanes = new Map<string, HandlerLane>()
  private readonly limits = new Map<string, Semaphore>()

  constructor(private readonly ctx: ContextSettings, private readonly log: Logger, private readonly observe?: ObserveRun) {}

  /** Starts the handler's thread and imports its module there (a HandlerLoader). */
  async load(file: HandlerFile, module: string, display: string): Promise<LoadedHandler | LoadFailure> {
    const lane = new HandlerLane({ name: file.name, event: file.event, path: display, module, ctx: this.ctx }, this.log)
    let loaded = await lane.start(DEFAULT_MEMORY_MB)
    // the heap cap is fixed when a thread starts: a handler asking for another one is loaded again under it
    if (loaded.ok && loaded.config.memoryMb !== DEFAULT_MEMORY_MB) loaded = await lane.start(loaded.config.memoryMb)
    if (!loaded.ok) {
      await lane.close()
      return { path: display, event: file.event, error: loaded.error }
    }
    lane.timeoutMs = loaded.config.timeout
    this.lanes.set(file.name, lane)
    this.limits.set(file.name, new Semaphore(loaded.config.concurrency))
    return loadedHandler(file, module, display, loaded.config)
  }

  /** One attempt of one handler on one event. Never rejects: whatever goes wrong is this pair's failed attempt, never its batch's. */
  async invoke(handler: LoadedHandler, event: WireEvent, attempt: number): Promise<InvokeResult> {
    const lane = this.lanes.get(handler.name)
    const limit = this.limits.get(handler.name)
    if (!lane || !limit) return { ok: false, error: notLoaded(handler.name, attempt) }
    const wait = limit.acquire()
    if (wait) await wait
    try {
      const outcome = await lane.run(event, attempt)
      this.observe?.(handler.name, outcome.ok ? 'ok' : outcome.timeout ? 'timeout' : 'error', outcome.ms / 1000)
      if (outcome.ok) return { ok: true }
      if (outcome.stopped) this.log.warn({ handler: handler.name, eventId: event.id, attempt }, outcome.error.message)
      const error: AttemptError = { attempt, at: Date.now(), ...outcome.error }
      return outcome.final ? { ok: false, error, final: true } : { ok: false, error }
    } catch (err) {
      return { ok: false, error: { attempt, at: Date.now(), ...describeThrown(err) } }
    } finally {
      limit.release()
    }
  }

  /** Ends every handler thread. Safe to call twice. */
  async close(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((lane) => lane.close()))
  }
}

import { errorMessage, isMqfnError, mqfnError } from '../common/errors.ts'
import { describeThrown } from './sandbox/thrown.ts'
import type { MqfnEvent } from '../common/events.ts'
import type { AttemptError } from '../common/queues.ts'
import { createContext, type ContextDeps } from './context.ts'
import type { LoadedHandler } from './load.ts'
import { Semaphore } from './semaphore.ts'

/** Told how each attempt that ran went (the worker's metrics). */
export type ObserveRun = (handler: string, outcome: 'ok' | 'error' | 'timeout', seconds: number) => void

/** `final`: retrying cannot help (the payload failed the handler's schema). */
export type InvokeResult = { ok: true } | { ok: false; error: AttemptError; final?: true }

/** JSON-parses a published payload and checks it against the handler's schema. */
function parsePayload(handler: LoadedHandler, event: MqfnEvent): { ok: true; event: MqfnEvent } | { ok: false; message: string } {
  if (!handler.payload || event.type !== 'published') return { ok: true, event }
  let json: unknown
  try {
    json = JSON.parse(event.payload.toString('utf8'))
  } catch (err) {
    return { ok: false, message: `payload is not JSON: ${errorMessage(err)}` }
  }
  const result = handler.payload.safeParse(json)
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : '(payload)'}: ${i.message}`).join('; ')
    return { ok: false, message: `payload does not match the handler's schema: ${detail}` }
  }
  return { ok: true, event: { ...event, data: result.data } as MqfnEvent }
}

/**
 * Runs one handler on one event, once: within its concurrency limit, aborted at its
 * timeout. A handler that ignores the abort signal keeps running in the background,
 * but its attempt is already counted as failed.
 */
export class Invoker {
  private readonly deps: ContextDeps
  private readonly limits = new Map<string, Semaphore>()
  private readonly observe: ObserveRun | undefined

  constructor(deps: ContextDeps, observe?: ObserveRun) {
    this.deps = deps
    this.observe = observe
  }

  /** Never rejects: whatever goes wrong is this (event, handler) pair's failed attempt, never its batch's. */
  async invoke(handler: LoadedHandler, original: MqfnEvent, attempt: number): Promise<InvokeResult> {
    try {
      return await this.run(handler, original, attempt)
    } catch (err) {
      return { ok: false, error: { attempt, at: Date.now(), ...describeThrown(err) } }
    }
  }

  private async run(handler: LoadedHandler, original: MqfnEvent, attempt: number): Promise<InvokeResult> {
    const checked = parsePayload(handler, original)
    if (!checked.ok) return { ok: false, final: true, error: { attempt, at: Date.now(), name: 'PayloadValidationError', message: checked.message } }
    const event = checked.event
    let limit = this.limits.get(handler.name)
    if (!limit) this.limits.set(handler.name, (limit = new Semaphore(handler.config.concurrency)))
    await limit.acquire()
    const controller = new AbortController()
    const timeout = handler.config.timeout
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = mqfnError('MQFN_ERR_HANDLER_TIMEOUT', handler.name, timeout)
        controller.abort(err)
        reject(err)
      }, timeout)
    })
    const bindings: Record<string, unknown> = { eventId: event.id, event: event.type }
    if ('clientId' in event) bindings.clientId = event.clientId
    const ctx = createContext(this.deps, handler.name, attempt, controller.signal, bindings, event)
    const started = performance.now()
    try {
      await Promise.race([Promise.resolve().then(() => handler.fn(event, ctx)), timedOut])
      const seconds = (performance.now() - started) / 1000
      this.observe?.(handler.name, 'ok', seconds)
      ctx.log.debug({ attempt, ms: Math.round(seconds * 1000) }, 'handler done')
      return { ok: true }
    } catch (err) {
      this.observe?.(handler.name, isMqfnError(err, 'MQFN_ERR_HANDLER_TIMEOUT') ? 'timeout' : 'error', (performance.now() - started) / 1000)
      const error: AttemptError = { attempt, at: Date.now(), ...describeThrown(err) }
      ctx.log.warn({ err: error, attempt }, 'handler failed')
      return { ok: false, error }
    } finally {
      clearTimeout(timer)
      limit.release()
    }
  }
}

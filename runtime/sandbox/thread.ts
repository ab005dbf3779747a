import { parentPort, workerData } from 'node:worker_threads'
import { mqfnError } from '../../common/errors.ts'
import { decodeEvent } from '../../common/events.ts'
import { createLogger } from '../../common/logger.ts'
import type { HandlerContext } from '../api.ts'
import { createContext, LazyAbort } from '../context.ts'
import { importHandler } from '../load.ts'
import { parsePayload } from '../payload.ts'
import type { FromThread, RunItem, RunOutcome, ThreadSetup, ToThread } from './messages.ts'
import { threadContext } from './thread-context.ts'
import { describeThrown } from './thrown.ts'

/*
 * The entry of one handler's worker thread: imports the handler's compiled module, then
 * runs it on the events the worker sends, each attempt with its own ctx and timeout.
 * Whatever the handler does here (loop, allocate, exit) the worker's own event loop is
 * not blocked; the worker stops this thread when a deadline passes (sandbox/handler-thread.ts).
 */

/** After aborting ctx.signal at the timeout, how long a handler may take to notice before the thread is retired. */
const ABORT_GRACE_MS = 1000

// stack traces name the handler's source file and line (the compiled module carries an inline source map)
process.setSourceMapsEnabled(true)

const setup = workerData as ThreadSetup
const port = parentPort
if (!port) throw new Error('runtime/sandbox/thread.ts runs as a worker thread')
const log = createLogger(setup.ctx.role, setup.ctx.logLevel)
const deps = threadContext(setup.ctx, log)
const post = (message: FromThread) => port.postMessage(message)
const isThenable = (v: unknown): v is PromiseLike<unknown> => typeof (v as { then?: unknown } | null)?.then === 'function'

// a throw from a handler's stray timer or unawaited promise belongs to no attempt; it must not end the thread
const stray = (err: unknown) => log.error({ handler: setup.name, err: describeThrown(err) }, 'handler threw outside an attempt (a callback or an unawaited promise); ignored')
process.on('uncaughtException', stray)
process.on('unhandledRejection', stray)

// results go back in batches: one message per turn of the event loop, not per event
let results: { id: number; outcome: RunOutcome }[] = []
function report(id: number, outcome: RunOutcome): void {
  if (results.length === 0) setImmediate(() => {
    const batch = results
    results = []
    post({ kind: 'done', results: batch })
  })
  results.push({ id, outcome })
}

post({ kind: 'importing' })
const imported = await importHandler({ name: setup.name, event: setup.event, path: setup.path }, setup.module, setup.path)
if ('error' in imported) {
  post({ kind: 'load-failed', code: imported.error.code, message: imported.error.message })
} else {
  const handler = imported
  const debug = log.isLevelEnabled('debug')
  interface Attempt {
    id: number
    attempt: number
    started: number
    abort: LazyAbort
    ctx: HandlerContext
    /** Its outcome went back (done, failed or timed out). */
    reported: boolean
    /** The handler's promise settled (after a timeout it may still, or never). */
    settled: boolean
  }
  /*
   * The attempts of one message start together, and one timer serves them all instead
   * of a timer, a race and an AbortController per attempt (docs/performance.md, "Worker
   * CPU per event"): it fires at the earliest deadline of those still running, reports
   * each one past its own `timeout` and aborts its ctx.signal, and is set again for the rest.
   */
  const runMessage = (items: readonly RunItem[], timeout: number): void => {
    const running: Attempt[] = []
    let open = 0
    let timer: NodeJS.Timeout | undefined
    const settle = (a: Attempt, outcome: RunOutcome): void => {
      a.settled = true
      if (a.reported) return
      a.reported = true
      report(a.id, outcome)
      if (--open === 0) clearTimeout(timer)
    }
    const onTimer = (): void => {
      const now = performance.now()
      const late: Attempt[] = []
      let next = Infinity
      for (const a of running) {
        if (a.reported) continue
        if (now - a.started >= timeout) late.push(a)
        else next = Math.min(next, a.started + timeout)
      }
      for (const a of late) {
        const err = mqfnError('MQFN_ERR_HANDLER_TIMEOUT', setup.name, timeout)
        a.abort.abort(err)
        a.ctx.log.warn({ attempt: a.attempt, timeout }, err.message)
        a.reported = true
        open--
        report(a.id, { ok: false, timeout: true, ms: Math.round(now - a.started), error: { name: err.name, code: err.code, message: err.message } })
      }
      // a handler that ignores the abort would keep its resources: the worker replaces this thread
      if (late.length > 0) setTimeout(() => {
        const stuck = late.find((a) => !a.settled)
        if (stuck) post({ kind: 'stuck', id: stuck.id })
      }, ABORT_GRACE_MS).unref()
      if (open > 0) timer = setTimeout(onTimer, Math.max(1, Math.ceil(next - performance.now())))
    }
    const start = (item: RunItem): void => {
      const started = performance.now()
      const checked = parsePayload(handler.payload, decodeEvent(item.event))
      // named PayloadValidationError since before it had a code: dead-letter queries may select it by name
      if (!checked.ok) return report(item.id, { ok: false, final: true, ms: Math.round(performance.now() - started), error: { name: 'PayloadValidationError', code: checked.error.code, message: checked.error.message } })
      const abort = new LazyAbort()
      const a: Attempt = { id: item.id, attempt: item.attempt, started, abort, ctx: createContext(deps, setup.name, item.attempt, abort, checked.event), reported: false, settled: false }
      running.push(a)
      open++
      const ok = (): void => {
        const ms = Math.round(performance.now() - a.started)
        if (debug && !a.reported) a.ctx.log.debug({ attempt: a.attempt, ms }, 'handler done')
        settle(a, { ok: true, ms })
      }
      const failed = (err: unknown): void => {
        const error = describeThrown(err)
        if (!a.reported) a.ctx.log.warn({ err: error, attempt: a.attempt }, 'handler failed')
        settle(a, { ok: false, ms: Math.round(performance.now() - a.started), error })
      }
      try {
        const result = handler.fn(checked.event, a.ctx)
        if (isThenable(result)) result.then(ok, failed)
        else ok()
      } catch (err) {
        failed(err)
      }
    }
    for (const item of items) {
      try {
        start(item)
      } catch (err) {
        // the runtime's own failure (decoding the event, building ctx): this attempt's, not the others'
        if (!running.some((a) => a.id === item.id)) report(item.id, { ok: false, ms: 0, error: describeThrown(err) })
      }
    }
    if (open > 0) timer = setTimeout(onTimer, timeout)
  }
  port.on('message', (message: ToThread) => runMessage(message.items, message.timeout))
  post({ kind: 'loaded', config: handler.config })
}

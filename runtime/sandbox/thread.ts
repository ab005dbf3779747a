import { parentPort, workerData } from 'node:worker_threads'
import { mqfnError } from '../../common/errors.ts'
import { decodeEvent } from '../../common/events.ts'
import { createLogger } from '../../common/logger.ts'
import { createContext } from '../context.ts'
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
  const run = async (item: RunItem, timeout: number): Promise<void> => {
    const started = performance.now()
    const ms = () => Math.round(performance.now() - started)
    const checked = parsePayload(handler.payload, decodeEvent(item.event))
    // named PayloadValidationError since before it had a code: dead-letter queries may select it by name
    if (!checked.ok) return report(item.id, { ok: false, final: true, ms: ms(), error: { name: 'PayloadValidationError', code: checked.error.code, message: checked.error.message } })
    const event = checked.event
    const bindings: Record<string, unknown> = { eventId: event.id, event: event.type }
    if ('clientId' in event) bindings.clientId = event.clientId
    const controller = new AbortController()
    const ctx = createContext(deps, setup.name, item.attempt, controller.signal, bindings, event)
    let timer: NodeJS.Timeout | undefined
    const attempt = Promise.resolve().then(() => handler.fn(event, ctx))
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeout)))
    try {
      if ((await Promise.race([attempt, timedOut])) === 'timeout') {
        const err = mqfnError('MQFN_ERR_HANDLER_TIMEOUT', setup.name, timeout)
        controller.abort(err)
        ctx.log.warn({ attempt: item.attempt, timeout }, err.message)
        report(item.id, { ok: false, timeout: true, ms: ms(), error: { name: err.name, code: err.code, message: err.message } })
        // a handler that ignores the abort would keep its resources: the worker replaces this thread
        let settled = false
        attempt.then(() => (settled = true), () => (settled = true))
        setTimeout(() => settled || post({ kind: 'stuck', id: item.id }), ABORT_GRACE_MS).unref()
        return
      }
      ctx.log.debug({ attempt: item.attempt, ms: ms() }, 'handler done')
      report(item.id, { ok: true, ms: ms() })
    } catch (err) {
      const error = describeThrown(err)
      ctx.log.warn({ err: error, attempt: item.attempt }, 'handler failed')
      report(item.id, { ok: false, ms: ms(), error })
    } finally {
      clearTimeout(timer)
    }
  }
  port.on('message', (message: ToThread) => {
    for (const item of message.items) {
      run(item, message.timeout).catch((err: unknown) => report(item.id, { ok: false, ms: 0, error: describeThrown(err) }))
    }
  })
  post({ kind: 'loaded', config: handler.config })
}

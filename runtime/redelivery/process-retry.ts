import { DelayedError, type Job } from 'bullmq'
import { parseWireEvent } from '../../common/events.ts'
import type { RetryJobData } from '../../common/queues.ts'
import { notLoaded } from '../invoke.ts'
import type { ProcessDeps } from '../process-batch.ts'
import type { OrderedRetryData, Turn } from '../ordered/ordered-runs.ts'

/**
 * One handler on one event, again. Each failure is appended to the job's data
 * (kept in Redis), so the dead letter written after the last attempt holds every
 * attempt's error, the first one included.
 */
export async function processRetry(job: Job<RetryJobData>, deps: ProcessDeps, token: string | undefined): Promise<void> {
  const parsed = parseWireEvent(job.data.event)
  if (!parsed.ok) {
    await deps.deadLetters.invalidEvent(parsed.raw, parsed.error)
    return
  }
  const wire = parsed.event
  const errors = job.data.errors ?? []
  const handler = deps.registry.get(job.data.handler)
  const attempt = errors.length + 1
  if (!handler) {
    errors.push(notLoaded(job.data.handler, attempt))
    await deps.deadLetters.handlerGaveUp(wire, job.data.handler, errors)
    return
  }
  // an ordered handler's event waits here (a delayed job, no attempt spent) until its turn
  let turn: Turn | undefined
  if (handler.config.ordered && deps.ordered) {
    const taken = await deps.ordered.runs.takeTurn(job as Job<OrderedRetryData>, wire, handler, token)
    if (taken === 'done') return
    turn = taken
  }
  const result = turn ? await turn.attempt(handler, wire, attempt) : await deps.invoker.invoke(handler, wire, attempt)
  if (result.ok) {
    await turn?.finish()
    if (job.data.deadLetterId) await deps.deadLetters.resolved(job.data.deadLetterId)
    return
  }
  if (result.final) {
    // the payload failed the handler's schema: no retry can change that
    await deps.deadLetters.handlerGaveUp(wire, handler.name, [...errors, result.error])
    await turn?.finish()
    return
  }
  // later events of an ordered handler keep waiting for this one
  await turn?.release()
  if (await deps.storeDown()) {
    const since = job.data.outageSince ?? Date.now()
    if (Date.now() - since < deps.outageToleranceMs) {
      // not the handler's fault: try again later without spending an attempt
      await job.updateData({ ...job.data, outageSince: since })
      await job.moveToDelayed(Date.now() + Math.min(1000 * 2 ** Math.min(job.attemptsStarted, 5), 30_000), token)
      throw new DelayedError()
    }
  }
  errors.push(result.error)
  const { outageSince: _, ...data } = job.data
  await job.updateData({ ...data, errors })
  const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
  if (last) {
    await deps.deadLetters.handlerGaveUp(wire, handler.name, errors)
    await turn?.finish()
  }
  const err = new Error(result.error.message)
  err.name = result.error.name
  throw err
}

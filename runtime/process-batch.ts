import type { Job, Queue } from 'bullmq'
import { mqfnError } from '../common/errors.ts'
import type { WireEvent } from '../common/events.ts'
import type { AttemptError, BatchJobData } from '../common/queues.ts'
import { readBatch } from './batch-events.ts'
import type { Invoker } from './invoke.ts'
import type { LoadedHandler } from './load.ts'
import { groupOrdered, type OrderedGroup, type OrderedRuns } from './ordered/ordered-runs.ts'
import { batchOrigin, firstRetry, type DeadLetters, type RetryJob } from './redelivery/index.ts'
import type { Registry } from './registry.ts'
import type { EventLog } from './store/event-log.ts'
import type { Presence } from './store/presence.ts'

export interface ProcessDeps {
  eventLog: EventLog
  presence: Presence
  deadLetters: DeadLetters
  registry: Registry
  invoker: Invoker
  /** The queue a retry job of this event type goes back to. */
  queue: Queue
  /** True while MongoDB does not answer. */
  storeDown: () => Promise<boolean>
  outageToleranceMs: number
  /** Present when some handler of this event type has `ordered: true`: those handlers, and their runner. */
  ordered?: { runs: OrderedRuns; handlers: readonly LoadedHandler[] }
}

/**
 * One batch of events: validate (cheaply, batch-events.ts), append to the event log, update presence, run
 * every matching handler once. A handler that fails gets a retry job of its own;
 * the batch job succeeds. The batch fails (and BullMQ retries it) only if the
 * store or Redis does: then handlers may run again, which at-least-once allows.
 */
export async function processBatch(job: Job<BatchJobData>, deps: ProcessDeps): Promise<{ events: number; failures: number }> {
  const { valid, invalid } = readBatch(job.data.events ?? [])
  await Promise.all(invalid.map((bad) => deps.deadLetters.invalidEvent(bad.raw, bad.error)))
  await deps.eventLog.append(valid)
  await deps.presence.apply(valid)

  const runs: Promise<void>[] = []
  const retries: RetryJob[] = []
  const dead: (() => Promise<void>)[] = []
  let retryableFailure = false
  // ordered handlers get each client's events as one group, run in capture order
  const groups = new Map<string, OrderedGroup>()
  const outside = batchOrigin(job) === 'replay'
  const ordered = deps.ordered
  // A failed first attempt: queue a retry job, or return the dead-letter write to make.
  const onFailure = (wire: WireEvent, handler: LoadedHandler, failure: { error: AttemptError; final?: true }): (() => Promise<void>) | undefined => {
    if (!failure.final) retryableFailure = true
    if (handler.config.attempts > 1 && !failure.final) {
      retries.push(firstRetry(wire, handler, [failure.error]))
      return undefined
    }
    return () => deps.deadLetters.handlerGaveUp(wire, handler.name, [failure.error])
  }
  for (const wire of valid) {
    // routing reads topics only: no payload decoded here (the handler's thread decodes it)
    const handlers = deps.registry.for(wire)
    const grouped = ordered ? groupOrdered(groups, ordered.handlers, wire) : undefined
    if (handlers.length === 0) continue
    for (const handler of handlers) {
      if (grouped?.has(handler)) continue
      runs.push(
        deps.invoker.invoke(handler, wire, 1).then((result) => {
          if (result.ok) return
          const write = onFailure(wire, handler, result)
          if (write) dead.push(write)
        }),
      )
    }
  }
  let groupError: unknown
  for (const { handler, items } of groups.values()) {
    const failed = async (wire: WireEvent, result: { error: AttemptError; final?: true }): Promise<'retry' | 'dead'> => {
      const write = onFailure(wire, handler, result)
      if (!write) return 'retry'
      // written before the chain moves on: a later event never runs ahead of a lost failure
      await write()
      return 'dead'
    }
    // settle every group before failing the batch: its rerun must not race runs still going
    if (ordered) runs.push(ordered.runs.runGroup(handler, items, failed, outside).catch((err: unknown) => void (groupError ??= err)))
  }
  await Promise.all(runs)
  if (groupError !== undefined) throw groupError
  // Handlers that failed because the store is down are not at fault: run the batch
  // again later instead of spending their attempts (at-least-once allows the rerun).
  if (retryableFailure && (await deps.storeDown())) throw mqfnError('MQFN_ERR_STORE_OUTAGE')
  await Promise.all(dead.map((write) => write()))
  if (retries.length > 0) await deps.queue.addBulk(retries)
  return { events: valid.length, failures: retries.length + dead.length }
}

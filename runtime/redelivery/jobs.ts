import { randomBytes } from 'node:crypto'
import type { JobsOptions } from 'bullmq'
import type { WireEvent } from '../../common/events.ts'
import { JOB_BATCH, JOB_RETRY, type AttemptError, type BatchJobData, type RetryJobData } from '../../common/queues.ts'

/*
 * Every job the runtime enqueues again, and its id, built here: a handler's retry
 * after its first failed attempt, an ordered event parked until its turn, a replay
 * and a retried dead letter. The job's meaning travels in its data (`origin`); an id
 * only has to be unique where it must be, and stable where a duplicate must collapse.
 */

export interface RetryJob {
  name: typeof JOB_RETRY
  data: RetryJobData
  opts: JobsOptions
}

export interface BatchJob {
  name: typeof JOB_BATCH
  data: BatchJobData
  opts: JobsOptions
}

/** What a retry job needs of a handler. */
export interface RetryTarget {
  readonly name: string
  readonly config: { readonly attempts: number; readonly backoff: number }
}

// BullMQ refuses ":" in custom ids; "~" keeps them readable in bull-board
const idPart = (s: string) => s.replace(/[/:]/g, '~')

/**
 * One live retry job per (event, handler), whichever path made it (a batch, or an
 * ordered event parked): a batch processed twice adds the same id, which BullMQ ignores.
 */
export function retryJobId(eventId: string, handler: string): string {
  return `${idPart(eventId)}~${idPart(handler)}`
}

/**
 * A replay or a retried dead letter must not collapse into an earlier job of the same
 * (event, handler), which BullMQ may still keep as failed: a run id makes it new.
 */
export function newRunId(): string {
  return `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`
}

// a failed retry stays visible in bull-board and `mqfn dlq` for a while, then goes
const KEEP_FAILED = { count: 10_000 } as const

interface RetryOptions {
  jobId: string
  attempts: number
  /** The first delay of the exponential backoff, jittered by half. */
  backoffMs: number
  delay?: number
  /** A replay's failed jobs are kept, as `mqfn replay` always kept them. */
  removeOnFail?: JobsOptions['removeOnFail']
}

/** The one shape of a retry job; its callers differ in origin, id, attempts and backoff. */
function retryJob(data: RetryJobData, o: RetryOptions): RetryJob {
  return {
    name: JOB_RETRY,
    data,
    opts: {
      jobId: o.jobId,
      attempts: o.attempts,
      ...(o.delay === undefined ? {} : { delay: o.delay }),
      backoff: { type: 'exponential', delay: o.backoffMs, jitter: 0.5 },
      removeOnComplete: true,
      removeOnFail: o.removeOnFail ?? KEEP_FAILED,
    },
  }
}

/** After a handler's failed first attempt: its remaining attempts, with its backoff. */
export function firstRetry(event: WireEvent, handler: RetryTarget, errors: AttemptError[]): RetryJob {
  const base = handler.config.backoff
  return retryJob({ v: 1, event, handler: handler.name, errors, origin: 'retry' }, {
    jobId: retryJobId(event.id, handler.name),
    attempts: handler.config.attempts - 1,
    delay: Math.round(base * (0.75 + Math.random() * 0.5)),
    backoffMs: base * 2,
  })
}

/**
 * The id of an ordered event parked for its turn. A live one shares its pair's retry
 * id (a batch run twice parks it once); a replayed one gets a run id, or an earlier
 * failed job of the same pair, still kept, would swallow it.
 */
export function parkedJobId(eventId: string, handler: string, replayed: boolean): string {
  return replayed ? `${retryJobId(eventId, handler)}~${newRunId()}` : retryJobId(eventId, handler)
}

/**
 * An ordered handler's event that must wait for its turn (runtime/ordered): woken by
 * its predecessor, else run at `delayMs`. A replayed event keeps its origin, so it
 * still runs outside the live chain when its turn comes.
 */
export function parkedRetry(event: WireEvent, handler: RetryTarget, jobId: string, delayMs: number, replayed: boolean): RetryJob {
  const data: RetryJobData & { parkedAt: number } = { v: 1, event, handler: handler.name, errors: [], origin: replayed ? 'replay' : 'retry', parkedAt: Date.now() }
  return retryJob(data, { jobId, attempts: handler.config.attempts, delay: delayMs, backoffMs: handler.config.backoff })
}

/** `mqfn dlq retry`: the dead letter's handler again, its attempt numbers continuing after `errors`. */
export function deadLetterRetry(event: WireEvent, handler: string, errors: AttemptError[], deadLetterId: string, options: { attempts: number; backoffMs: number }): RetryJob {
  return retryJob({ v: 1, event, handler, errors, origin: 'dlq-retry', deadLetterId }, {
    jobId: `${retryJobId(event.id, handler)}~${newRunId()}`,
    attempts: options.attempts,
    backoffMs: options.backoffMs,
  })
}

/** `mqfn replay --handler`: that handler alone on an event of the log. */
export function replayRetry(event: WireEvent, handler: string, attempts: number, run: string): RetryJob {
  return retryJob({ v: 1, event, handler, errors: [], origin: 'replay' }, {
    jobId: `${retryJobId(event.id, handler)}~${run}`,
    attempts,
    backoffMs: 1000,
    removeOnFail: false,
  })
}

/** `mqfn replay`: events of the log as one batch for every handler (the event log and presence skip what they hold). */
export function replayBatch(events: WireEvent[], run: string, first: number): BatchJob {
  return { name: JOB_BATCH, data: { v: 1, events, origin: 'replay' }, opts: { jobId: `${run}.${first}` } }
}

import type { BatchJobData, RetryJobData, RetryOrigin } from '../../common/queues.ts'

/*
 * Where a job came from, read from its data. A replayed event runs outside its
 * client's ordered chain (it is history, not the live sequence), and a retried dead
 * letter is deleted once its handler succeeds; both decisions read this.
 *
 * Transition: workers before this change (CHANGELOG, Unreleased: "a job's origin
 * in its data") did not carry `origin`; they named these jobs instead,
 * `replay~<run>~…` (mqfn replay) and `dlq~<id>~…` (mqfn dlq retry, whose data always
 * carried `deadLetterId`, which is what is read), and marked a parked replayed event
 * `outside: true`. Such jobs may still sit in Redis (delayed,
 * waiting, or failed and retried by hand) when a newer worker starts, so both are
 * read here, and only here. Remove the fallbacks once no such job can be left.
 */

const LEGACY_REPLAY = 'replay~'

interface JobLike<T> {
  readonly id?: string | undefined
  readonly data: T
}

/** A retry job's origin; jobs of older versions by their markers or id prefix. */
export function retryOrigin(job: JobLike<RetryJobData & { outside?: true }>): RetryOrigin {
  if (job.data.origin) return job.data.origin
  if (job.data.deadLetterId !== undefined) return 'dlq-retry'
  if (job.data.outside === true || job.id?.startsWith(LEGACY_REPLAY)) return 'replay'
  return 'retry'
}

/** A batch job's origin: the broker's capture, or `mqfn replay`. */
export function batchOrigin(job: JobLike<BatchJobData>): 'capture' | 'replay' {
  if (job.data.origin) return job.data.origin
  return job.id?.startsWith(LEGACY_REPLAY) ? 'replay' : 'capture'
}

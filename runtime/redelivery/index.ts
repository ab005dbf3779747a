/*
 * Dead letters, retries and replays: one module, this its only entry. Everything
 * that enqueues an event again (a handler's retry, an ordered event parked for its
 * turn, `mqfn replay`, `mqfn dlq retry` and the dashboard's Retry) builds its job in
 * jobs.ts and says why in the job's data; origin.ts reads that back (and the id
 * prefixes of jobs older workers left in Redis). The worker runs retry jobs with
 * process-retry.ts and writes dead letters with store.ts.
 */
export { batchOrigin, retryOrigin } from './origin.ts'
export { firstRetry, parkedJobId, parkedRetry, retryJobId, type RetryJob } from './jobs.ts'
export { DeadLetters, type DeadLetterDocument } from './store.ts'
export {
  decodePayload,
  getDeadLetter,
  isEmptyFilter,
  listDeadLetters,
  purgeDeadLetters,
  type DeadLetterFilter,
  type DeadLetterSummary,
} from './dead-letters.ts'
export { retryDeadLetters, retryQueues, type EnqueueRetries } from './retry-dead-letters.ts'
export { replayEvents, type ReplayFilter } from './replay.ts'
export { processRetry } from './process-retry.ts'

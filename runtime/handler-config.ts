import { z } from 'zod'
import { validateTopicFilter } from '../common/topic.ts'

const filter = z.string().superRefine((value, ctx) => {
  const problem = validateTopicFilter(value)
  if (problem) ctx.addIssue({ code: 'custom', message: problem })
})

/** A handler thread's heap cap when its config names none: room for a driver, a cache and a batch of events. */
export const DEFAULT_MEMORY_MB = 256

/** Validates a handler file's `config` export; unknown keys are errors, not silently ignored. */
export const HandlerConfigSchema = z
  .object({
    topic: z.union([filter, z.array(filter).min(1)]).optional(),
    timeout: z.number().int().positive().max(15 * 60_000).default(30_000),
    attempts: z.number().int().min(1).max(100).default(3),
    backoff: z.number().int().min(0).max(3_600_000).default(1000),
    concurrency: z.number().int().min(1).max(10_000).default(16),
    ordered: z.boolean().default(false),
    memoryMb: z.number().int().min(16).max(16_384).default(DEFAULT_MEMORY_MB),
  })
  .strict()

export type ResolvedHandlerConfig = z.output<typeof HandlerConfigSchema>

import { z } from 'zod'
import { EVENT_TYPES, isEventType, type EventType } from '../common/event-types.ts'
import {
  adminSettings,
  envNames,
  loadConfig,
  logLevel,
  nonNegativeInt,
  positiveInt,
  queuePrefix,
  redisUrl,
  withEnv,
  type LoadOptions,
} from '../common/config.ts'

const eventList = z
  .union([z.array(z.string()), z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))])
  .superRefine((names, ctx) => {
    const bad = names.filter((n) => !isEventType(n))
    if (bad.length > 0) ctx.addIssue({ code: 'custom', message: `unknown event ${bad.map((b) => `"${b}"`).join(', ')}; valid: ${EVENT_TYPES.join(', ')}` })
  })
  .transform((names) => names as EventType[])
  .default([...EVENT_TYPES])

/*
 * Jobs are I/O-bound (a store write, then handlers that mostly wait on I/O), and at a
 * steady rate each holds one event: with 4 at once the pipeline stalled at ~300
 * events/s with the store half idle (docs/performance.md). A handler's own
 * `concurrency` (default 16) still bounds its runs.
 */
const DEFAULT_CONCURRENCY = 32

/** Jobs at once per event queue: one number for all, or per event with `*` for the others. */
export type ConcurrencySpec = number | Readonly<Partial<Record<EventType | '*', number>>>

/**
 * `8`, or `published=16,*=4` in the environment (an object in the config file): per
 * event queue, `*` for every event not named; events named by neither get DEFAULT_CONCURRENCY.
 */
const concurrency = z
  .union([z.coerce.number(), z.record(z.string(), z.unknown()), z.string()])
  .transform((value, ctx): ConcurrencySpec => {
    const problem = (message: string) => {
      ctx.addIssue({ code: 'custom', message })
      return z.NEVER
    }
    const count = (v: unknown, what: string): number => {
      const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN
      return Number.isInteger(n) && n > 0 ? n : problem(`${what}: expected a positive integer, got ${JSON.stringify(v)}`)
    }
    if (typeof value === 'number') return count(value, 'concurrency')
    const entries = typeof value === 'string'
      ? value.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
          const eq = part.indexOf('=')
          return eq === -1 ? ['*', part] : [part.slice(0, eq).trim(), part.slice(eq + 1)]
        })
      : Object.entries(value)
    const spec: Partial<Record<EventType | '*', number>> = {}
    for (const [name, v] of entries) {
      if (name !== '*' && !isEventType(name as string)) return problem(`unknown event "${name}" (expected <event>=<n> or *=<n>; events: ${EVENT_TYPES.join(', ')})`)
      spec[name as EventType | '*'] = count(v, name as string)
    }
    if (Object.keys(spec).length === 0) return problem('expected a number or <event>=<n>,*=<n>')
    return Object.keys(spec).length === 1 && spec['*'] !== undefined ? spec['*'] : Object.freeze(spec)
  })
  .default(DEFAULT_CONCURRENCY)

/** How many jobs of this event's queue a worker runs at once. */
export function concurrencyFor(spec: ConcurrencySpec, type: EventType): number {
  return typeof spec === 'number' ? spec : (spec[type] ?? spec['*'] ?? DEFAULT_CONCURRENCY)
}

export const WorkerConfigSchema = z.object({
  redisUrl,
  /** @defaultValue `mongodb://127.0.0.1:27017/mqfn` */
  mongoUrl: withEnv(z.string().regex(/^mongodb(\+srv)?:\/\//, 'expected a mongodb:// or mongodb+srv:// URL').default('mongodb://127.0.0.1:27017/mqfn'), 'MONGO_URL'),
  /** Database name; the URL's path when not set, else `mqfn`. */
  database: z.string().regex(/^[^/\\. "$]+$/, 'expected a MongoDB database name').optional(),
  prefix: queuePrefix,
  /** Where handler files live. @defaultValue `./functions` */
  functionsDir: z.string().min(1).default('functions'),
  /** Event queues this worker consumes (comma-separated in the environment). @defaultValue all */
  events: eventList,
  /** Jobs processed at once per event queue: a number, or `published=16,*=4` per event. @defaultValue 32 */
  concurrency,
  /** Days the event log keeps an event; 0 keeps them forever. @defaultValue 30 */
  retentionDays: withEnv(nonNegativeInt(30), 'MQFN_EVENT_LOG_RETENTION_DAYS'),
  /**
   * How long a job stays locked to a worker that stopped renewing the lock (a killed
   * worker): after this its jobs go to another worker. @defaultValue 30000
   */
  lockDurationMs: positiveInt(30_000),
  /** How often workers look for such stalled jobs. @defaultValue 15000 */
  stalledIntervalMs: positiveInt(15_000),
  /** Times a job may stall (its worker died) before it is failed instead of retried. @defaultValue 3 */
  maxStalledCount: positiveInt(3),
  /** On SIGTERM, how long running jobs may take to finish before they are left to another worker. @defaultValue 25000 */
  drainTimeoutMs: positiveInt(25_000),
  /**
   * While MongoDB is unreachable, failed handler attempts do not count against their
   * attempts, for up to this long per event; after it they count again. @defaultValue 600000 (10 min)
   */
  outageToleranceMs: positiveInt(600_000),
  /**
   * How long an event of an `ordered` handler waits for an earlier event of its client
   * that no worker has seen (lost, or stuck in a failed batch) before it runs anyway.
   * @defaultValue 30000
   */
  orderedGapTimeoutMs: positiveInt(30_000),
  /** How long start-up waits for Redis and MongoDB. @defaultValue 5000 */
  connectTimeoutMs: positiveInt(5000),
  logLevel,
  ...adminSettings(9091),
})

export type WorkerConfig = z.output<typeof WorkerConfigSchema>

/** Each key's environment variable (`functionsDir` → `MQFN_FUNCTIONS_DIR`; common/config.ts). */
export const WORKER_ENV = envNames(WorkerConfigSchema)

export function loadWorkerConfig(options?: LoadOptions): Readonly<WorkerConfig> {
  return loadConfig(WorkerConfigSchema, WORKER_ENV, options)
}

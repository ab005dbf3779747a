import { z } from 'zod'
import { EVENT_TYPES, isEventType, type EventType } from '../common/event-types.ts'
import {
  adminHost,
  adminToken,
  flag,
  loadConfig,
  logLevel,
  nonNegativeInt,
  port,
  positiveInt,
  queuePrefix,
  redisUrl,
  type EnvNames,
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

export const WorkerConfigSchema = z.object({
  redisUrl,
  /** @defaultValue `mongodb://127.0.0.1:27017/mqfn` */
  mongoUrl: z.string().regex(/^mongodb(\+srv)?:\/\//, 'expected a mongodb:// or mongodb+srv:// URL').default('mongodb://127.0.0.1:27017/mqfn'),
  /** Database name; the URL's path when not set, else `mqfn`. */
  database: z.string().regex(/^[^/\\. "$]+$/, 'expected a MongoDB database name').optional(),
  prefix: queuePrefix,
  /** Where handler files live. @defaultValue `./functions` */
  functionsDir: z.string().min(1).default('functions'),
  /** Event queues this worker consumes (comma-separated in the environment). @defaultValue all */
  events: eventList,
  /** Jobs processed at once per event queue. @defaultValue 4 */
  concurrency: positiveInt(4),
  /** Days the event log keeps an event; 0 keeps them forever. @defaultValue 30 */
  retentionDays: nonNegativeInt(30),
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
  /** How long start-up waits for Redis and MongoDB. @defaultValue 5000 */
  connectTimeoutMs: positiveInt(5000),
  logLevel,
  /** Interface of the admin HTTP server. @defaultValue `127.0.0.1` */
  adminHost,
  /** Admin HTTP port (/healthz, /readyz, /metrics, the dashboard); 0 picks a free port. @defaultValue 9091 */
  adminPort: port(9091),
  /** Serve the admin HTTP endpoints. @defaultValue true */
  adminEnabled: flag(true),
  /** Bearer token (or `?token=`) for everything but /healthz; without one those endpoints answer 401. */
  adminToken,
})

export type WorkerConfig = z.output<typeof WorkerConfigSchema>

export const WORKER_ENV: EnvNames<WorkerConfig> = {
  redisUrl: 'REDIS_URL',
  mongoUrl: 'MONGO_URL',
  database: 'MQFN_DATABASE',
  prefix: 'MQFN_PREFIX',
  functionsDir: 'MQFN_FUNCTIONS_DIR',
  events: 'MQFN_EVENTS',
  concurrency: 'MQFN_CONCURRENCY',
  retentionDays: 'MQFN_EVENT_LOG_RETENTION_DAYS',
  lockDurationMs: 'MQFN_LOCK_DURATION_MS',
  stalledIntervalMs: 'MQFN_STALLED_INTERVAL_MS',
  maxStalledCount: 'MQFN_MAX_STALLED_COUNT',
  drainTimeoutMs: 'MQFN_DRAIN_TIMEOUT_MS',
  outageToleranceMs: 'MQFN_OUTAGE_TOLERANCE_MS',
  connectTimeoutMs: 'MQFN_CONNECT_TIMEOUT_MS',
  logLevel: 'MQFN_LOG_LEVEL',
  adminHost: 'MQFN_ADMIN_HOST',
  adminPort: 'MQFN_ADMIN_PORT',
  adminEnabled: 'MQFN_ADMIN_ENABLED',
  adminToken: 'MQFN_ADMIN_TOKEN',
}

export function loadWorkerConfig(options?: LoadOptions): Readonly<WorkerConfig> {
  return loadConfig(WorkerConfigSchema, WORKER_ENV, options)
}

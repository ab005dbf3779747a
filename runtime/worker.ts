import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { Queue, Worker, type Job } from 'bullmq'
import type { AdminServer } from '../common/admin-server.ts'
import { EVENT_TYPES, type EventType } from '../common/event-types.ts'
import { createLogger, type Logger } from '../common/logger.ts'
import { throttled } from '../common/throttle.ts'
import { within } from '../common/within.ts'
import { JOB_BATCH, JOB_RETRY, OUTBOX_QUEUE, queueName, type BatchJobData, type OutboxJobData, type RetryJobData } from '../common/queues.ts'
import { advertiseDemand } from '../common/event-demand.ts'
import { assertRedisReachable, checkRedisSettings, createRedis } from '../common/redis.ts'
import { concurrencyFor, type WorkerConfig } from './config.ts'
import { Invoker } from './invoke.ts'
import { loadHandlers, type LoadedHandler, type LoadFailure } from './load.ts'
import { connectMongo, databaseName } from './mongo.ts'
import { processBatch, type ProcessDeps } from './process-batch.ts'
import { Registry } from './registry.ts'
import { OrderedRuns } from './ordered/ordered-runs.ts'
import { Sequencer } from './ordered/sequencer.ts'
import { processRetry, type DeadLetters } from './redelivery/index.ts'
import { EventLog } from './store/event-log.ts'
import { lastSeenKey, Presence } from './store/presence.ts'
import { createStoreHealth } from './store/health.ts'
import { createWorkerMetrics, ObservedDeadLetters } from './metrics.ts'
import { startWorkerAdmin } from './admin/server.ts'

export interface FunctionsWorker {
  readonly handlers: readonly LoadedHandler[]
  /** Handler files that could not be loaded, each with the reason. */
  readonly errors: readonly LoadFailure[]
  /** Event types not consumed because a handler file of theirs did not load. */
  readonly held: readonly EventType[]
  /** Port of the admin HTTP server (/healthz, /readyz, /metrics, /dashboard); undefined when it is disabled. */
  readonly adminPort: number | undefined
  /** Stops taking jobs, lets the running ones finish, closes connections. Safe to call twice. */
  close(): Promise<void>
}

export async function createWorker(config: Readonly<WorkerConfig>, log: Logger = createLogger('worker', config.logLevel)): Promise<FunctionsWorker> {
  await assertRedisReachable(config.redisUrl, config.connectTimeoutMs)
  const mongo = await connectMongo(config)
  const db = mongo.db(databaseName(config))
  // every event queue (consumed here or not) and the outbox: their depths, and bull-board
  const allQueues: Queue[] = []
  const metrics = createWorkerMetrics(allQueues)
  metrics.watchMongo(mongo)
  const connection = createRedis(config.redisUrl, 'mqfn-worker')
  metrics.watchRedis(connection)
  connection.on('error', throttled(5000, (suppressed, err) => log.warn({ err: (err as Error).message, suppressed }, 'redis connection error')))
  await checkRedisSettings(connection, log)
  // one sweeper per period across every worker
  const sweepKey = `${config.prefix}:event-log-sweep`
  const sweepToken = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
  const eventLog = new EventLog(db, config.retentionDays, log, {
    claim: async (periodMs) => (await connection.set(sweepKey, sweepToken, 'PX', periodMs, 'NX')) === 'OK',
    release: async () => {
      if ((await connection.get(sweepKey)) === sweepToken) await connection.del(sweepKey)
    },
  })
  const presence = new Presence(db, {
    lastSeen: { redis: connection, key: lastSeenKey(config.prefix) },
    onError: throttled(10_000, (suppressed, err) => log.warn({ err, suppressed }, 'presence: writing last-seen times to Redis failed; kept for the next try')),
  })
  const deadLetters: DeadLetters = new ObservedDeadLetters(db, metrics, log)
  await Promise.all([eventLog.setup(), presence.setup(), deadLetters.setup()])

  const invoker = new Invoker(
    { mongoUrl: config.mongoUrl, database: databaseName(config), redisUrl: config.redisUrl, prefix: config.prefix, logLevel: config.logLevel, role: 'worker' },
    log,
    metrics.handler,
  )
  const loaded = await loadHandlers(config.functionsDir, (file, module, display) => invoker.load(file, module, display))
  if (loaded.handlers.length === 0 && loaded.errors.length === 0) log.warn({ functionsDir: config.functionsDir }, 'no handler files: running the built-ins (event log, presence) only')
  for (const { error } of loaded.errors) log.error({ code: error.code }, error.message)
  // An event type with a handler file that did not load is not consumed: its events wait
  // in Redis until the file is fixed and a worker loads it, instead of skipping that handler.
  const held = [...new Set(loaded.errors.flatMap((e) => (e.event ? [e.event] : [])))].filter((t) => config.events.includes(t))
  for (const type of held) log.error({ event: type, files: loaded.errors.filter((e) => e.event === type).map((e) => e.path) }, `not consuming ${type} events until its handler files load; they wait in Redis`)
  metrics.handlerFiles(loaded.errors, held)
  const notReady = loaded.errors.map((e) => `${e.error.code}: ${e.error.message}`)
  for (const h of loaded.handlers) log.info({ handler: h.name, path: h.path, config: h.config }, 'handler loaded')
  const registry = new Registry(loaded.handlers)

  const outbox = new Queue<OutboxJobData>(OUTBOX_QUEUE, { connection, prefix: config.prefix })
  // the connection's listener above reports Redis errors; without a listener BullMQ prints each one
  outbox.on('error', () => {})
  const storeDown = createStoreHealth(db)

  // every event queue, consumed here or not: the dashboard, /metrics and dead-letter retries use them all
  const byType = new Map(EVENT_TYPES.map((type) => {
    const queue = new Queue(queueName(type), { connection, prefix: config.prefix })
    queue.on('error', () => {})
    return [type, queue] as const
  }))
  allQueues.push(...byType.values(), outbox)
  const workers: Worker[] = []
  const blocking: ReturnType<typeof createRedis>[] = []
  let sequencer: Sequencer | undefined
  const consumed = config.events.filter((t) => !held.includes(t))
  for (const type of consumed) {
    const queue = byType.get(type) as Queue
    const deps: ProcessDeps = { eventLog, presence, deadLetters, registry, invoker, queue, storeDown, outageToleranceMs: config.outageToleranceMs }
    const ordered = loaded.handlers.filter((h) => h.event === type && h.config.ordered)
    if (ordered.length > 0) {
      // the lock of a client's ordered run expires like a BullMQ job lock: a killed worker's client moves on
      sequencer ??= new Sequencer(connection, config.prefix, config.lockDurationMs)
      deps.ordered = { runs: new OrderedRuns({ sequencer, invoker, queue, gapTimeoutMs: config.orderedGapTimeoutMs, log }), handlers: ordered }
    }
    const own = createRedis(config.redisUrl, `mqfn-worker:${type}`)
    own.on('error', () => {})
    metrics.watchRedis(own)
    blocking.push(own)
    const worker = new Worker(queueName(type), (job: Job, token?: string) => route(job, deps, token), {
      connection: own,
      prefix: config.prefix,
      concurrency: concurrencyFor(config.concurrency, type),
      lockDuration: config.lockDurationMs,
      stalledInterval: config.stalledIntervalMs,
      maxStalledCount: config.maxStalledCount,
    })
    worker.on('error', throttled(10_000, (suppressed, err) => log.error({ err, queue: type, suppressed }, 'queue worker error')))
    worker.on('completed', () => metrics.job(type, 'completed'))
    worker.on('failed', (job, err) => {
      metrics.job(type, 'failed')
      if (job?.name === JOB_BATCH) log.error({ err, queue: type, jobId: job.id, attempts: job.attemptsMade }, 'batch failed; BullMQ retries it')
    })
    workers.push(worker)
  }
  // the brokers capture `delivered` only while some worker handles it (MQFN_CAPTURE_DELIVERED=auto)
  const handled = consumed.filter((t) => loaded.handlers.some((h) => h.event === t))
  const demand = advertiseDemand(connection, config.prefix, sweepToken, handled)
  let admin: AdminServer | undefined

  let closing: Promise<void> | undefined
  const close = async () => {
    // Stop taking jobs and let running ones finish; past the drain timeout, leave them
    // locked: their locks expire and another worker's stalled-job check takes them.
    if (!(await within(config.drainTimeoutMs, Promise.all(workers.map((w) => w.close()))))) {
      log.warn({ drainTimeoutMs: config.drainTimeoutMs }, 'jobs still running at the drain timeout; leaving them to other workers')
      await within(5000, Promise.all(workers.map((w) => w.close(true))))
    }
    // with Redis unreachable these would wait for it forever
    await within(1000, demand.close())
    // presence's last lastSeen write goes to Redis: before the connection is quit
    await within(5000, presence.close().catch((err: unknown) => log.warn({ err }, 'presence: last lastSeen write failed')))
    await admin?.close()
    await within(5000, Promise.all(allQueues.map((q) => q.close())))
    for (const c of [...blocking, connection]) {
      if (!(await within(1000, c.quit()))) c.disconnect()
    }
    eventLog.close()
    await within(5000, mongo.close())
    await invoker.close()
    await loaded.dispose()
    log.info('worker closed')
  }
  try {
    admin = await startWorkerAdmin(config, log, {
      metrics,
      db,
      queues: allQueues,
      broken: { files: notReady, held },
      lastSeen: (docs) => presence.lastSeen(docs),
      enqueue: async (type, jobs) => void (await (byType.get(type) as Queue).addBulk(jobs)),
      ready: async () => {
        const up = closing === undefined &&
          [connection, ...blocking].every((c) => c.status === 'ready') &&
          workers.every((w) => w.isRunning()) &&
          !(await storeDown())
        return notReady.length === 0 ? up : { ok: false, reasons: notReady }
      },
    })
  } catch (err) {
    await (closing ??= close())
    throw err
  }
  log.info({ events: consumed, held, concurrency: config.concurrency, handlers: registry.size, failedFiles: loaded.errors.length }, 'worker ready')
  return { handlers: loaded.handlers, errors: loaded.errors, held, adminPort: admin?.port, close: () => (closing ??= close()) }
}

function route(job: Job, deps: ProcessDeps, token: string | undefined): Promise<unknown> {
  if (job.name === JOB_BATCH) return processBatch(job as Job<BatchJobData>, deps)
  if (job.name === JOB_RETRY) return processRetry(job as Job<RetryJobData>, deps, token)
  throw new Error(`unknown job "${job.name}" in queue ${job.queueName}`)
}


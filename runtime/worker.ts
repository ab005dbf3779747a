import { Queue, Worker, type Job } from 'bullmq'
import { MongoClient } from 'mongodb'
import type { EventType } from '../common/event-types.ts'
import { errorMessage, mqfnError } from '../common/errors.ts'
import { createLogger, type Logger } from '../common/logger.ts'
import { JOB_BATCH, JOB_RETRY, OUTBOX_QUEUE, queueName, type BatchJobData, type OutboxJobData, type RetryJobData } from '../common/queues.ts'
import { assertRedisReachable, createRedis, redactUrl } from '../common/redis.ts'
import type { WorkerConfig } from './config.ts'
import { createPublisher } from './context.ts'
import { Invoker } from './invoke.ts'
import { loadHandlers, type LoadedHandler } from './load.ts'
import { processBatch, type ProcessDeps } from './process-batch.ts'
import { processRetry } from './process-retry.ts'
import { Registry } from './registry.ts'
import { DeadLetters } from './store/dead-letters.ts'
import { EventLog } from './store/event-log.ts'
import { Presence } from './store/presence.ts'
import type { MqfnError } from '../common/errors.ts'

export interface FunctionsWorker {
  readonly handlers: readonly LoadedHandler[]
  /** Handler files that could not be loaded, each with the reason. */
  readonly errors: readonly { path: string; error: MqfnError }[]
  /** Stops taking jobs, lets the running ones finish, closes connections. Safe to call twice. */
  close(): Promise<void>
}

async function connectMongo(config: Readonly<WorkerConfig>): Promise<MongoClient> {
  const client = new MongoClient(config.mongoUrl, { serverSelectionTimeoutMS: config.connectTimeoutMs, appName: 'mqfn-worker' })
  try {
    await client.connect()
    await client.db('admin').command({ ping: 1 })
  } catch (err) {
    await client.close().catch(() => {})
    throw mqfnError('MQFN_ERR_MONGO_UNREACHABLE', redactUrl(config.mongoUrl), errorMessage(err))
  }
  return client
}

function databaseName(config: Readonly<WorkerConfig>): string {
  if (config.database) return config.database
  const path = new URL(config.mongoUrl.replace(/^mongodb(\+srv)?:/, 'http:')).pathname.slice(1)
  return path || 'mqfn'
}

export async function createWorker(config: Readonly<WorkerConfig>, log: Logger = createLogger('worker', config.logLevel)): Promise<FunctionsWorker> {
  await assertRedisReachable(config.redisUrl, config.connectTimeoutMs)
  const mongo = await connectMongo(config)
  const db = mongo.db(databaseName(config))
  const eventLog = new EventLog(db, config.retentionDays, log)
  const presence = new Presence(db)
  const deadLetters = new DeadLetters(db)
  await Promise.all([eventLog.setup(), presence.setup(), deadLetters.setup()])

  const loaded = await loadHandlers(config.functionsDir)
  if (loaded.handlers.length === 0 && loaded.errors.length === 0) log.warn({ functionsDir: config.functionsDir }, 'no handler files: running the built-ins (event log, presence) only')
  for (const { error } of loaded.errors) log.error({ code: error.code }, error.message)
  for (const h of loaded.handlers) log.info({ handler: h.name, path: h.path, config: h.config }, 'handler loaded')
  const registry = new Registry(loaded.handlers)

  const connection = createRedis(config.redisUrl, 'mqfn-worker')
  connection.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'))
  const outbox = new Queue<OutboxJobData>(OUTBOX_QUEUE, { connection, prefix: config.prefix })
  const invoker = new Invoker({ db, log, publish: createPublisher(outbox) })

  const queues: Queue[] = []
  const workers: Worker[] = []
  const blocking: ReturnType<typeof createRedis>[] = []
  for (const type of config.events) {
    const queue = new Queue(queueName(type), { connection, prefix: config.prefix })
    queues.push(queue)
    const deps: ProcessDeps = { eventLog, presence, deadLetters, registry, invoker, queue }
    const own = createRedis(config.redisUrl, `mqfn-worker:${type}`)
    own.on('error', () => {})
    blocking.push(own)
    const worker = new Worker(queueName(type), (job: Job) => route(job, deps), {
      connection: own,
      prefix: config.prefix,
      concurrency: config.concurrency,
    })
    worker.on('error', (err) => log.error({ err, queue: type }, 'queue worker error'))
    worker.on('failed', (job, err) => {
      if (job?.name === JOB_BATCH) log.error({ err, queue: type, jobId: job.id, attempts: job.attemptsMade }, 'batch failed; BullMQ retries it')
    })
    workers.push(worker)
  }
  log.info({ events: config.events, handlers: registry.size, failedFiles: loaded.errors.length }, 'worker ready')

  let closing: Promise<void> | undefined
  const close = async () => {
    await Promise.all(workers.map((w) => w.close()))
    await Promise.all([...queues, outbox].map((q) => q.close()))
    await Promise.all(blocking.map((c) => c.quit().catch(() => c.disconnect())))
    await connection.quit().catch(() => connection.disconnect())
    eventLog.close()
    await mongo.close()
    await loaded.dispose()
    log.info('worker closed')
  }
  return { handlers: loaded.handlers, errors: loaded.errors, close: () => (closing ??= close()) }
}

function route(job: Job, deps: ProcessDeps): Promise<unknown> {
  if (job.name === JOB_BATCH) return processBatch(job as Job<BatchJobData>, deps)
  if (job.name === JOB_RETRY) return processRetry(job as Job<RetryJobData>, deps)
  throw new Error(`unknown job "${job.name}" in queue ${job.queueName}`)
}

export type { EventType }

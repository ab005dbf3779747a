import { randomBytes } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, type TestContext } from 'node:test'
import { MongoClient, type Db } from 'mongodb'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { createBroker, type Broker } from '../../broker/broker.ts'
import { BrokerConfigSchema, type BrokerConfig } from '../../broker/config.ts'
import { createLogger } from '../../common/logger.ts'
import { WorkerConfigSchema, type WorkerConfig } from '../../runtime/config.ts'
import { createWorker, type FunctionsWorker } from '../../runtime/worker.ts'
import { Invoker } from '../../runtime/invoke.ts'
import { loadHandlers, type LoadResult } from '../../runtime/load.ts'
import { startServices, type Services } from '../../scripts/services.ts'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

let shared: Promise<Services> | undefined
// registered when this module is imported (top level), so it runs once the file's
// tests are done; registered inside a test it would run when that test ends
after(async () => (await shared)?.stop())

/**
 * Redis and FerretDB for this test file: the ones `npm test` started (REDIS_URL,
 * MONGO_URL), or our own when a file runs alone.
 */
export function services(): Promise<Services> {
  if (!shared) {
    shared = startServices()
  }
  return shared
}

export function unique(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`
}

/** Writes handler files to a fresh functions/ directory inside the project (so imports resolve). */
export async function functionsDir(files: Record<string, string>): Promise<string> {
  const dir = join(ROOT, '.mqfn', 'test', unique('fns'), 'functions')
  await mkdir(dir, { recursive: true })
  for (const [name, source] of Object.entries(files)) {
    const path = join(dir, name)
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, source)
  }
  after(() => rm(dirname(dir), { recursive: true, force: true }))
  return dir
}

/** A handler that stores every call in `calls`: `{_id: <eventId>/<handler>, handler, attempt, event}`. */
export function recorder(event: string, config = '{}', extra = ''): string {
  return `import { defineHandler } from 'mqtt-functions'
import { Binary } from 'mongodb'
export const config = ${config}
export default defineHandler('${event}', async (event, ctx) => {
  ${extra}
  const doc = { ...event, payload: 'payload' in event ? new Binary(event.payload) : undefined }
  await ctx.db.collection('calls').updateOne(
    { _id: event.id + '/' + ctx.handler },
    { $set: { handler: ctx.handler, attempt: ctx.attempt, type: event.type, event: doc } },
    { upsert: true })
})
`
}

export interface Stack {
  broker: Broker
  worker: FunctionsWorker
  db: Db
  mongo: MongoClient
  mqttPort: number
  wsPort: number
  prefix: string
  services: Services
  brokerConfig: BrokerConfig
  workerConfig: WorkerConfig
  /** Starts a new broker on the same ports and prefix (after a close). */
  restartBroker(): Promise<Broker>
}

export interface StackOptions {
  functions: Record<string, string>
  broker?: Partial<BrokerConfig>
  worker?: Partial<WorkerConfig>
  /** Do not start the worker. */
  noWorker?: boolean
}

/** A broker and a worker in this process, with a unique queue prefix and database; closed after the test. */
export async function startStack(t: TestContext | undefined, opts: StackOptions): Promise<Stack> {
  const svc = await services()
  const prefix = `{${unique('t')}}`
  const database = unique('db').replace('-', '_')
  const brokerConfig = BrokerConfigSchema.parse({
    redisUrl: svc.redisUrl, prefix, host: '127.0.0.1', mqttPort: 0, wsPort: 0, brokerId: unique('broker'), logLevel: 'error', auth: 'none', adminPort: 0,
    // as TEST_DEFAULT_ENV (processes.ts): the per-address limits have their own tests
    connectRatePerIp: 0, connectionErrorsPerIp: 0,
    // MQFN_CAPTURE_THREAD=all|pump npm test -- …: the same tests with capture in a thread (processes.ts passes the environment on)
    captureThread: process.env.MQFN_CAPTURE_THREAD ?? 'off', ...opts.broker,
  })
  const log = createLogger('test', process.env.MQFN_TEST_LOG ?? 'silent')
  let broker = await createBroker(brokerConfig, log)
  const mqttPort = broker.listeners.find((l) => l.protocol === 'mqtt')?.port as number
  const wsPort = broker.listeners.find((l) => l.protocol === 'ws')?.port ?? 0
  const workerConfig = WorkerConfigSchema.parse({
    redisUrl: svc.redisUrl, mongoUrl: svc.mongoUrl, database, prefix, functionsDir: await functionsDir(opts.functions), logLevel: 'error', concurrency: 4, adminPort: 0, ...opts.worker,
  })
  let worker: FunctionsWorker | undefined
  try {
    worker = opts.noWorker ? undefined : await createWorker(workerConfig, log)
  } catch (err) {
    await broker.close()
    throw err
  }
  const mongo = await MongoClient.connect(svc.mongoUrl)
  const stack: Stack = {
    get broker() { return broker },
    worker: worker as FunctionsWorker,
    db: mongo.db(database),
    mongo,
    mqttPort,
    wsPort,
    prefix,
    services: svc,
    brokerConfig,
    workerConfig,
    async restartBroker() {
      broker = await createBroker({ ...brokerConfig, mqttPort, wsPort }, log)
      return broker
    },
  }
  const cleanup = async () => {
    await broker.close()
    await worker?.close()
    await mongo.db(database).dropDatabase().catch(() => {})
    await mongo.close()
  }
  if (t) t.after(cleanup)
  else after(cleanup)
  return stack
}

/** Polls `fn` until it returns something truthy. Poll heavy queries slowly: FerretDB serves one writer at a time. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 15_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

export async function connect(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, ...opts })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  after(() => new Promise<void>((r) => client.end(true, {}, () => r())))
  return client
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/**
 * Loads a functions directory as a worker does, each handler in its own thread; the
 * threads reach MongoDB and Redis only when a handler uses ctx, so none are needed here.
 * `dispose` ends the threads too.
 */
export async function loadIsolated(dir: string): Promise<LoadResult> {
  const invoker = new Invoker({ mongoUrl: 'mongodb://127.0.0.1:1/unused', database: 'unused', redisUrl: 'redis://127.0.0.1:1', prefix: 'unused', logLevel: 'silent', role: 'test' }, createLogger('test', 'silent'))
  const loaded = await loadHandlers(dir, (file, module, display) => invoker.load(file, module, display))
  return { ...loaded, dispose: async () => { await invoker.close(); await loaded.dispose() } }
}

import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { MongoClient, type Db } from 'mongodb'
import { freePort, type Services } from '../../scripts/services.ts'
import { ROOT, functionsDir, services, unique } from './stack.ts'

export const BIN = join(ROOT, 'dist', 'mqfn.js')

export type MqfnProcess = ChildProcess & { output: () => string; exited: () => Promise<number | null> }

/**
 * Tests that are not about security or the admin server run without authentication
 * and with admin ports picked free, so they can run side by side; tests open many
 * connections from 127.0.0.1 and expect an event for each, so the per-address connect
 * rate and connection-error summaries are off. `env` overrides all of these.
 */
export const TEST_DEFAULT_ENV: NodeJS.ProcessEnv = { MQFN_AUTH: 'none', MQFN_ADMIN_PORT: '0', MQFN_CONNECT_RATE_PER_IP: '0', MQFN_CONNECTION_ERRORS_PER_IP: '0' }

/** `mqfn <command>` exactly as a user runs it: the built bin, configured by environment. */
export function mqfn(t: TestContext, command: string, env: NodeJS.ProcessEnv, args: readonly string[] = []): MqfnProcess {
  return spawnCaptured(t, [BIN, command, ...args], { env: { ...process.env, ...TEST_DEFAULT_ENV, ...env } })
}

/** Node with `args`, its output collected, killed after the test if still running. */
export function spawnCaptured(t: TestContext, args: readonly string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }): MqfnProcess {
  const child = spawn(process.execPath, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return Object.assign(child, { output: () => out, exited: () => exit })
}

export interface StackLike {
  prefix: string
  services: { redisUrl: string; mongoUrl: string }
  workerConfig: { functionsDir: string; database?: string | undefined }
}

/** The environment that points an `mqfn worker` process at a test stack's queues and database. */
export function workerEnv(stack: StackLike, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    REDIS_URL: stack.services.redisUrl,
    MONGO_URL: stack.services.mongoUrl,
    MQFN_DATABASE: stack.workerConfig.database,
    MQFN_PREFIX: stack.prefix,
    MQFN_FUNCTIONS_DIR: stack.workerConfig.functionsDir,
    // a killed worker's jobs move to another worker within seconds, not the production 30 s
    MQFN_LOCK_DURATION_MS: '3000',
    MQFN_STALLED_INTERVAL_MS: '1000',
    ...extra,
  }
}

/** Start-up, not speed, is what callers wait for: a worker starts one thread per handler, slow on a loaded 2-core machine. */
export async function ready(p: MqfnProcess, text: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!p.output().includes(text)) {
    if (p.exitCode !== null) throw new Error(`process exited (${p.exitCode}) before "${text}":\n${p.output()}`)
    if (Date.now() > deadline) throw new Error(`no "${text}" within ${timeoutMs} ms:\n${p.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export interface ProcessStack extends StackLike {
  db: Db
  mqttPort: number
  brokerEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv
  workerEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv
}

/** Queues, database and functions for broker and worker processes that the test starts itself. */
export async function processStack(t: TestContext, functions: Record<string, string>, svc?: Services): Promise<ProcessStack> {
  const services_ = svc ?? (await services())
  const prefix = `{${unique('f')}}`
  const database = unique('fault').replace('-', '_')
  const mqttPort = await freePort()
  const mongo = await MongoClient.connect(services_.mongoUrl)
  t.after(async () => {
    await mongo.db(database).dropDatabase().catch(() => {})
    await mongo.close()
    await dropPrefix(services_.redisUrl, prefix)
  })
  const stack = {
    prefix,
    services: services_,
    workerConfig: { functionsDir: await functionsDir(functions), database },
    db: mongo.db(database),
    mqttPort,
  }
  return {
    ...stack,
    brokerEnv: (extra = {}) => ({
      REDIS_URL: services_.redisUrl, MQFN_PREFIX: prefix, MQFN_HOST: '127.0.0.1', MQFN_MQTT_PORT: String(mqttPort), MQFN_WS_ENABLED: 'false', ...extra,
    }),
    workerEnv: (extra = {}) => workerEnv(stack, extra),
  }
}

/**
 * Deletes a test's keys from the Redis that the test files share: what a test queued
 * and no worker drained would otherwise stay for the rest of the run, and every later
 * AOF rewrite would write it to disk again (test/slow-subscriber-isolation.test.ts left
 * ~380 MB, before it had a Redis of its own).
 */
async function dropPrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.unlink(...keys)
    } while (cursor !== '0')
  } catch {
    // a test that stopped its own Redis leaves nothing to delete
  } finally {
    redis.disconnect()
  }
}

/** `mqfn worker` and `mqfn broker` on a process stack, once both have said they are ready. */
export async function startWorkerAndBroker(t: TestContext, stack: ProcessStack): Promise<{ worker: MqfnProcess; broker: MqfnProcess }> {
  const worker = mqfn(t, 'worker', stack.workerEnv())
  const broker = mqfn(t, 'broker', stack.brokerEnv())
  await Promise.all([ready(worker, 'worker ready'), ready(broker, 'broker ready')])
  return { worker, broker }
}

/** `mqfn dev` on its own prefix and database, once its broker and worker are ready; `db` is that database. */
export async function startDev(t: TestContext, dir: string): Promise<{ dev: MqfnProcess; mqttPort: number; db: Db }> {
  const svc = await services()
  const database = unique('dev').replace('-', '_')
  const mqttPort = await freePort()
  const dev = mqfn(t, 'dev', {
    REDIS_URL: svc.redisUrl, MONGO_URL: svc.mongoUrl, MQFN_DATABASE: database, MQFN_PREFIX: `{${unique('dev')}}`,
    MQFN_FUNCTIONS_DIR: dir, MQFN_MQTT_PORT: String(mqttPort), MQFN_WS_PORT: String(await freePort()), MQFN_HOST: '127.0.0.1',
  })
  await ready(dev, '[worker] worker ready', 60_000)
  await ready(dev, '[broker] broker ready')
  const mongo = await MongoClient.connect(svc.mongoUrl)
  t.after(async () => {
    await mongo.db(database).dropDatabase()
    await mongo.close()
  })
  return { dev, mqttPort, db: mongo.db(database) }
}

import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { ROOT } from './stack.ts'

export const BIN = join(ROOT, 'dist', 'mqfn.js')

export type MqfnProcess = ChildProcess & { output: () => string; exited: () => Promise<number | null> }

/** `mqfn <command>` exactly as a user runs it: the built bin, configured by environment. */
export function mqfn(t: TestContext, command: string, env: NodeJS.ProcessEnv): MqfnProcess {
  const child = spawn(process.execPath, [BIN, command], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
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

export async function ready(p: MqfnProcess, text: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!p.output().includes(text)) {
    if (p.exitCode !== null) throw new Error(`process exited (${p.exitCode}) before "${text}":\n${p.output()}`)
    if (Date.now() > deadline) throw new Error(`no "${text}" within ${timeoutMs} ms:\n${p.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

import { spawn, type ChildProcess } from 'node:child_process'
import { killOnExit } from './children.ts'
import { existsSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort, waitForPort } from '../scripts/services.ts'

/** A broker under test, running in a child process of its own. */
export interface Target {
  /** `baseline`: another build of ours (MQFN_BENCH_BASELINE), measured beside the current one. */
  name: 'plain-aedes' | 'mqfn' | 'mosquitto' | 'baseline'
  port: number
  pid: number
  stop(): Promise<void>
}

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto'

export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
  return kb / 1024
}

/**
 * CPU time (user + system) a process has used so far, in ms: /proc/<pid>/stat fields 14 and 15, in clock ticks (100/s on Linux).
 * `mainThread`: its main thread's alone (/proc/<pid>/task/<pid>/stat), without worker threads, libuv's pool or V8's GC helpers.
 */
export function cpuMs(pid: number, mainThread = false): number {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      const kill = setTimeout(() => child.kill('SIGKILL'), 30_000)
      child.once('exit', () => {
        clearTimeout(kill)
        resolve()
      })
      child.kill('SIGTERM')
    })
}

async function launch(name: Target['name'], cmd: string, args: string[], env: NodeJS.ProcessEnv, port: number): Promise<Target> {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'inherit'] })
  killOnExit(child)
  await waitForPort(port, child, name)
  return { name, port, pid: child.pid as number, stop: stopper(child) }
}

export async function startPlainAedes(bundle: string, cpuProfDir?: string): Promise<Target> {
  const port = await freePort()
  const args = [...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : []), bundle]
  return launch('plain-aedes', process.execPath, args, { ...process.env, PORT: String(port) }, port)
}

export interface MqfnOptions {
  root: string
  redisUrl: string
  prefix: string
  /** Directory for a V8 CPU profile (`node --cpu-prof`), written when the broker exits. */
  cpuProfDir?: string
  env?: NodeJS.ProcessEnv
  /** Another build's `dist/mqfn.js`, run as the `baseline` target. */
  bundle?: string
}

export async function startMqfn(opts: MqfnOptions): Promise<Target> {
  const port = await freePort()
  const args = [...(opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : []), opts.bundle ?? join(opts.root, 'dist', 'mqfn.js'), 'broker']
  return launch(opts.bundle ? 'baseline' : 'mqfn', process.execPath, args, {
    ...process.env,
    ...opts.env,
    REDIS_URL: opts.redisUrl,
    MQFN_PREFIX: opts.prefix,
    MQFN_MQTT_PORT: String(port),
    MQFN_WS_ENABLED: 'false',
    MQFN_HOST: '127.0.0.1',
    MQFN_LOG_LEVEL: 'warn',
    MQFN_AUTH: 'none',
    MQFN_ADMIN_PORT: '0',
    // the load comes from four loopback addresses, where a fleet has thousands; Mosquitto has no such limit either
    MQFN_CONNECT_RATE_PER_IP: '0',
  }, port)
}

export async function startMosquitto(dir: string): Promise<Target | undefined> {
  if (!existsSync(MOSQUITTO_BIN)) return undefined
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  // Unbounded queues: mosquitto drops messages to a slow subscriber past 1000 queued
  // by default, which would count as throughput it never delivered.
  await writeFile(conf, [
    `listener ${port} 127.0.0.1`, 'allow_anonymous true', 'max_queued_messages 0', 'max_queued_bytes 0', 'persistence false', 'log_dest none', '',
  ].join('\n'))
  return launch('mosquitto', MOSQUITTO_BIN, ['-c', conf], process.env, port)
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, createConnection } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runInstaller } from './install.ts'

/*
 * Starts Redis and FerretDB (MongoDB wire protocol on SQLite) on free loopback ports
 * for `mqfn dev`, the tests and the benchmarks, unless REDIS_URL / MONGO_URL point
 * at servers already. Installs what is missing with scripts/install-services.sh.
 */

export interface Services {
  redisUrl: string
  mongoUrl: string
  /** The Redis child, when we started it (fault tests stop and restart it). */
  redis?: ManagedProcess
  mongo?: ManagedProcess
  stop(): Promise<void>
}

export interface ManagedProcess {
  readonly port: number
  readonly child: ChildProcess
  stop(signal?: NodeJS.Signals): Promise<void>
}

const here = dirname(fileURLToPath(import.meta.url))
const root = existsSync(join(here, 'install-services.sh')) ? here : join(here, '..', 'scripts')

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/**
 * A tool installed with `go install` / `go build` into $(go env GOPATH)/bin, which is
 * often not on PATH: an explicit override first, then PATH, then GOPATH/bin (~/go/bin,
 * Go's default, when go itself is not there to ask).
 */
export function findGoTool(name: string, override?: string): string | undefined {
  const candidates = [override]
  const onPath = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  if (onPath.status === 0) candidates.push(onPath.stdout.trim())
  const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' })
  candidates.push(join(gopath.status === 0 ? gopath.stdout.trim() : join(homedir(), 'go'), 'bin', name))
  return candidates.find((c): c is string => typeof c === 'string' && c.length > 0 && existsSync(c))
}

const findFerretdb = () => findGoTool('ferretdb', process.env.FERRETDB_BIN)

/** A script beside this file (or, from the bundle in dist/, in scripts/). */
export const installScript = (name: string): string => join(root, name)

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0
}


/** Installs redis-server / FerretDB when one is needed and missing (scripts/install-services.sh). */
export async function installMissing(needRedis: boolean, needMongo: boolean): Promise<void> {
  if ((needRedis && !hasCommand('redis-server')) || (needMongo && !findFerretdb())) await runInstaller(installScript('install-services.sh'), 'installing Redis / FerretDB')
}

export async function waitForPort(port: number, child: ChildProcess, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} before listening on 127.0.0.1:${port}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host: '127.0.0.1' }, () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function manage(child: ChildProcess, port: number): ManagedProcess {
  // detached children outlive us unless told: never leave a server behind
  const reap = () => child.kill('SIGKILL')
  process.once('exit', reap)
  child.once('exit', () => process.removeListener('exit', reap))
  return {
    port,
    child,
    stop: (signal: NodeJS.Signals = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill(signal)
      }),
  }
}

export interface RedisOptions {
  dir: string
  port?: number
  /**
   * AOF on: fsync every second, or on every write (what the fault tests restart Redis
   * with); `off`: no AOF, for a test about the broker that writes faster than a disk
   * should have to keep up with.
   */
  fsync?: 'everysec' | 'always' | 'off'
}

export async function startRedis(opts: RedisOptions): Promise<ManagedProcess> {
  const port = opts.port ?? (await freePort())
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', opts.dir, '--save', '', '--loglevel', 'warning',
    '--maxmemory-policy', 'noeviction',
    ...(opts.fsync === 'off' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', opts.fsync ?? 'everysec'])]
  // own process group: a Ctrl-C meant for `mqfn dev` must not stop Redis before the broker and worker are done with it
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'], detached: true })
  await waitForPort(port, child, 'redis-server')
  return manage(child, port)
}

export async function startFerretdb(dir: string, port?: number): Promise<ManagedProcess> {
  const bin = findFerretdb()
  if (!bin) throw new Error('ferretdb not found; run scripts/install-services.sh or set MONGO_URL')
  const p = port ?? (await freePort())
  const child = spawn(bin, [
    '--handler=sqlite', `--sqlite-url=file:${dir}/`, `--state-dir=${dir}`, `--listen-addr=127.0.0.1:${p}`,
    '--debug-addr=-', '--telemetry=disable', `--log-level=${process.env.MQFN_FERRETDB_LOG ?? 'error'}`,
  ], { stdio: ['ignore', 'ignore', 'inherit'], detached: true })
  await waitForPort(p, child, 'ferretdb')
  return manage(child, p)
}

export async function startServices(env: NodeJS.ProcessEnv = process.env): Promise<Services> {
  const needRedis = !env.REDIS_URL
  const needMongo = !env.MONGO_URL
  await installMissing(needRedis, needMongo)
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-services-'))
  const redis = needRedis ? await startRedis({ dir }) : undefined
  let mongo: ManagedProcess | undefined
  try {
    mongo = needMongo ? await startFerretdb(dir) : undefined
  } catch (err) {
    await redis?.stop()
    throw err
  }
  const stop = async () => {
    await Promise.all([redis?.stop(), mongo?.stop()])
    await rm(dir, { recursive: true, force: true })
  }
  return {
    redisUrl: env.REDIS_URL ?? `redis://127.0.0.1:${redis?.port}`,
    mongoUrl: env.MONGO_URL ?? `mongodb://127.0.0.1:${mongo?.port}/`,
    ...(redis ? { redis } : {}),
    ...(mongo ? { mongo } : {}),
    stop,
  }
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, createConnection } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

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

function findFerretdb(): string | undefined {
  const candidates = [process.env.FERRETDB_BIN]
  const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' })
  if (gopath.status === 0) candidates.push(join(gopath.stdout.trim(), 'bin', 'ferretdb'))
  candidates.push(join(homedir(), 'go', 'bin', 'ferretdb'))
  const onPath = spawnSync('sh', ['-c', 'command -v ferretdb'], { encoding: 'utf8' })
  if (onPath.status === 0) candidates.unshift(onPath.stdout.trim())
  return candidates.find((c): c is string => typeof c === 'string' && c.length > 0 && existsSync(c))
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0
}

function installMissing(): void {
  const r = spawnSync('bash', [join(root, 'install-services.sh')], { stdio: 'inherit' })
  if (r.status !== 0) throw new Error('installing services failed (scripts/install-services.sh)')
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
  /** AOF on: fsync every second, or on every write (what the fault tests restart Redis with). */
  fsync?: 'everysec' | 'always'
}

export async function startRedis(opts: RedisOptions): Promise<ManagedProcess> {
  const port = opts.port ?? (await freePort())
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', opts.dir, '--save', '', '--loglevel', 'warning',
    '--maxmemory-policy', 'noeviction', '--appendonly', 'yes', '--appendfsync', opts.fsync ?? 'everysec']
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
  if ((needRedis && !hasCommand('redis-server')) || (needMongo && !findFerretdb())) installMissing()
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

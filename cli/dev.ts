import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { relative } from 'node:path'
import { createInterface } from 'node:readline'
import { BROKER_ENV, loadBrokerConfig } from '../broker/config.ts'
import { mqfnError } from '../common/errors.ts'
import { loadWorkerConfig, WORKER_ENV } from '../runtime/config.ts'
import { compileErrors } from '../runtime/load.ts'
import { awaitReload, reportTypeErrors } from './dev-reload.ts'
import { prettyLine } from './dev-log.ts'
import { startDevServices } from './dev-services.ts'
import { HELP, parseCommand } from './args.ts'

/*
 * `mqfn dev` replaces the worker on every save by starting the new one before stopping
 * the old, so for a moment two workers exist. Rather than have them fight over the
 * admin port (or make workers retry binding, which in production would hide a
 * misconfigured port), dev holds the worker's admin port itself and forwards each
 * request to the admin server of the current worker, which listens on a free loopback
 * port. The switch happens the moment the new worker is ready: the dashboard URL
 * never changes and never goes dark during a reload.
 */

interface AdminProxy {
  readonly port: number
  /** Where requests go from now on (the current worker's admin port). */
  target(port: number | undefined): void
  close(): Promise<void>
}

async function startAdminProxy(host: string, port: number): Promise<AdminProxy> {
  let upstreamPort: number | undefined
  const server: Server = createServer((req, res) => {
    if (upstreamPort === undefined) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' })
      res.end('the worker is starting\n')
      return
    }
    const upstream = request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(`the worker's admin server did not answer: ${err.message}\n`)
    })
    req.pipe(upstream)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  return {
    port: (server.address() as AddressInfo).port,
    target: (p) => (upstreamPort = p),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** The port in a process's "admin server listening" log line. */
function adminPortIn(line: string): number | undefined {
  if (!line.includes('admin server listening')) return undefined
  try {
    const port = (JSON.parse(line) as { adminPort?: unknown }).adminPort
    return typeof port === 'number' ? port : undefined
  } catch {
    return undefined
  }
}

function run(role: string, script: string, env: NodeJS.ProcessEnv, onLine?: (line: string) => void): ChildProcess {
  // Own process group: Ctrl-C reaches only this process, which stops the children in order.
  const child = spawn(process.execPath, [...process.execArgv, script, role], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  process.once('exit', () => child.kill('SIGKILL'))
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (l) => {
      onLine?.(l)
      console.log(prettyLine(l, role))
    })
  }
  return child
}

/** Resolves when the child prints `text`, rejects if it exits first. */
function printed(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      if (!chunk.toString().includes(text)) return
      child.stdout?.off('data', onData)
      resolve()
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`exited with code ${code}`)))
  })
}

/**
 * What dev changes in the environment broker and worker get, where the user set
 * nothing: a development broker takes anyone (it warns at start), and so listens on
 * this machine only (the broker's own default is 0.0.0.0); a local admin token, so
 * the dashboard works out of the box (printed with its URL).
 */
function devDefaults(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...base }
  const unset = (name: string) => !env[name]
  if (unset(BROKER_ENV.auth)) env[BROKER_ENV.auth] = 'none'
  if (env[BROKER_ENV.auth] === 'none' && unset(BROKER_ENV.host)) env[BROKER_ENV.host] = '127.0.0.1'
  if (unset(BROKER_ENV.adminToken)) env[BROKER_ENV.adminToken] = randomBytes(18).toString('base64url')
  return env
}

/**
 * `mqfn dev`: Redis and FerretDB (unless REDIS_URL / MONGO_URL are set), then a
 * broker and a worker as two processes, exactly as production runs them. Saving a
 * file under functions/ starts a fresh worker with the new code and, once it is
 * ready, stops the old one gracefully (its running events finish on the old code);
 * the broker and its connections are untouched. A file that does not compile is
 * reported with its file and line, and the running worker stays.
 */
export async function devMain(script: string): Promise<void> {
  // read as broker and worker will read them: a bad value stops dev before anything starts
  const settings = devDefaults(process.env)
  const brokerConfig = loadBrokerConfig({ env: settings })
  const workerConfig = loadWorkerConfig({ env: settings })
  // the broker takes MQFN_ADMIN_PORT (9090), the worker's stays one above it (9091); 0: both free
  if (brokerConfig.adminPort === 65535) throw mqfnError('MQFN_ERR_CONFIG', `adminPort (env ${BROKER_ENV.adminPort}): mqfn dev serves the worker's one above it; expected at most 65534`)
  const services = await startDevServices(process.cwd(), settings)
  const env: NodeJS.ProcessEnv = { ...settings, [WORKER_ENV.redisUrl]: services.redisUrl, [WORKER_ENV.mongoUrl]: services.mongoUrl }
  const { adminEnabled, adminHost, adminToken } = brokerConfig
  const proxy = adminEnabled ? await startAdminProxy(adminHost, brokerConfig.adminPort === 0 ? 0 : brokerConfig.adminPort + 1) : undefined
  const adminPorts = new WeakMap<ChildProcess, number>()
  const startWorker = () => {
    const child: ChildProcess = run('worker', script, { ...env, [WORKER_ENV.adminPort]: '0', [WORKER_ENV.adminHost]: '127.0.0.1' }, (line) => {
      const port = adminPortIn(line)
      if (port !== undefined) adminPorts.set(child, port)
    })
    return child
  }
  const { mqttPort, wsPort, wsPath } = brokerConfig
  const functionsDir = workerConfig.functionsDir
  const broker = run('broker', script, env)
  let worker = startWorker()
  const host = brokerConfig.host === '0.0.0.0' || brokerConfig.host === '::' ? '127.0.0.1' : brokerConfig.host
  // one line once both are up: what to connect to, and what to paste into another terminal
  void Promise.all([printed(broker, 'broker ready'), printed(worker, 'worker ready')]).then(() => {
    proxy?.target(adminPorts.get(worker))
    const dashboard = proxy ? `, dashboard http://${adminHost}:${proxy.port}/dashboard?token=${adminToken}` : ''
    console.log(`mqfn dev: ready: MQTT mqtt://${host}:${mqttPort}, WebSocket ws://${host}:${wsPort}${wsPath}${dashboard}`)
    console.log(`mqfn dev: data in ${services.dir ? relative(process.cwd(), services.dir) : 'your servers'}; watching ${functionsDir}/; try  mosquitto_pub -p ${mqttPort} -t sensors/kitchen/temp -m 21.5`)
    console.log(`export ${WORKER_ENV.redisUrl}=${services.redisUrl} ${WORKER_ENV.mongoUrl}=${services.mongoUrl}`)
  }, () => {})

  let stopping = false
  const stopChild = (c: ChildProcess) => new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve()
    c.once('exit', () => resolve())
    c.kill('SIGTERM')
  })
  const stop = async (code: number) => {
    if (stopping) return
    stopping = true
    watcher?.close()
    await Promise.all([broker, worker].map(stopChild))
    await proxy?.close()
    await services.stop()
    process.exit(code)
  }
  const watchExit = (c: ChildProcess, role: string) => c.on('exit', (code) => {
    // a worker replaced by a reload exits on purpose
    if (stopping || (role === 'worker' && c !== worker)) return
    console.error(`mqfn dev: the ${role} exited (code ${code}); stopping`)
    void stop(1)
  })
  watchExit(broker, 'broker')
  watchExit(worker, 'worker')

  let reloading = false
  let again = false
  const reload = async () => {
    if (reloading) {
      again = true
      return
    }
    reloading = true
    try {
      // reported, not blocking: esbuild runs the code as it is, and mqfn build refuses it
      reportTypeErrors(functionsDir)
      const errors = await compileErrors(functionsDir)
      if (errors.length > 0) {
        for (const e of errors) console.error(`mqfn dev: ${e.message}`)
        console.error('mqfn dev: not reloaded; the running worker keeps the previous version')
        return
      }
      const next = startWorker()
      const started = await awaitReload(next)
      if (!started.ok) {
        console.error(`mqfn dev: not reloaded: ${started.reason}; the running worker keeps the previous version`)
        next.kill('SIGKILL')
        return
      }
      const old = worker
      worker = next
      proxy?.target(adminPorts.get(next))
      watchExit(next, 'worker')
      await stopChild(old)
      console.log('mqfn dev: reloaded functions/')
    } finally {
      reloading = false
      if (again) {
        again = false
        void reload()
      }
    }
  }
  let timer: NodeJS.Timeout | undefined
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(functionsDir, { recursive: true }, () => {
      clearTimeout(timer)
      timer = setTimeout(() => void reload(), 150)
    })
  } catch (err) {
    console.error(`mqfn dev: cannot watch ${functionsDir}: ${(err as Error).message}; no reload on save`)
  }
  process.on('SIGINT', () => void stop(0))
  process.on('SIGTERM', () => void stop(0))
}

export const DEV_USAGE = `usage: mqfn dev

starts Redis and FerretDB (unless REDIS_URL / MONGO_URL are set), then a broker and a
worker, with readable logs. Saving a file under functions/ (MQFN_FUNCTIONS_DIR) starts
a fresh worker with the new code and then stops the old one; the broker and its
connections are untouched. Authentication is off unless MQFN_AUTH says otherwise, so
the broker listens on 127.0.0.1 unless MQFN_HOST says otherwise.

Every other setting comes from the environment as for mqfn broker and mqfn worker.
Stop it with Ctrl-C.`

/** `mqfn dev`: `undefined` while it runs. */
export async function devCommand(args: readonly string[], script: string): Promise<number | undefined> {
  const parsed = parseCommand('dev', DEV_USAGE, { args: [...args], options: { ...HELP } })
  if (!parsed) return 0
  await devMain(script)
  return undefined
}

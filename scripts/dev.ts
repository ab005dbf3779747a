import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { startServices } from './services.ts'

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' }
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'role', 'msg'])

/** One pino JSON line as `12:00:01 INFO  [worker] message key=value`. */
function pretty(line: string, role: string): string {
  let rec: Record<string, unknown>
  try {
    rec = JSON.parse(line) as Record<string, unknown>
  } catch {
    return `[${role}] ${line}`
  }
  const time = new Date(typeof rec.time === 'number' ? rec.time : Date.now()).toISOString().slice(11, 19)
  const extra = Object.entries(rec)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ')
  return `${time} ${LEVELS[rec.level as number] ?? rec.level} [${role}] ${String(rec.msg ?? '')}${extra ? ' ' + extra : ''}`
}

function run(role: string, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  // Own process group: Ctrl-C reaches only this process, which stops the children in order.
  const child = spawn(process.execPath, [...process.execArgv, script, role], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  process.once('exit', () => child.kill('SIGKILL'))
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (l) => console.log(pretty(l, role)))
  }
  return child
}

/**
 * `mqfn dev`: Redis and FerretDB (unless REDIS_URL / MONGO_URL are set), then a
 * broker and a worker as two processes, exactly as production runs them.
 */
export async function devMain(script: string): Promise<void> {
  const services = await startServices()
  const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: services.redisUrl, MONGO_URL: services.mongoUrl }
  const mqttPort = env.MQFN_MQTT_PORT ?? '1883'
  const wsPort = env.MQFN_WS_PORT ?? '8080'
  console.log(`mqfn dev: Redis ${services.redisUrl}, MongoDB ${services.mongoUrl}`)
  const children = [run('broker', script, env), run('worker', script, env)]
  console.log(`mqfn dev: MQTT on 127.0.0.1:${mqttPort}, WebSocket on ws://127.0.0.1:${wsPort}/mqtt`)
  console.log(`mqfn dev: try  mosquitto_pub -p ${mqttPort} -t sensors/kitchen/temp -m 21.5`)
  let stopping = false
  const stop = async (code: number) => {
    if (stopping) return
    stopping = true
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null) return resolve()
      c.once('exit', () => resolve())
      c.kill('SIGTERM')
    })))
    await services.stop()
    process.exit(code)
  }
  for (const c of children) c.on('exit', (code) => { if (!stopping) { console.error(`mqfn dev: a process exited (code ${code}); stopping`); void stop(1) } })
  process.on('SIGINT', () => void stop(0))
  process.on('SIGTERM', () => void stop(0))
}

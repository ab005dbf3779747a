import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, totalmem, tmpdir, hostname, release } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { Redis } from 'ioredis'
import { findGoTool, hasCommand, startFerretdb, startRedis, type ManagedProcess } from '../scripts/services.ts'
import { table, ratio, type Row } from './report.ts'
import { nowMs, percentile, summarize, type Summary } from './stats.ts'
import { MOSQUITTO_BIN, startMosquitto, startMqfn, startPlainAedes, type Target } from './targets.ts'
import { pingPongRun, throughputRun, type ThroughputSizes } from './throughput.ts'
import { profileRun } from './profile.ts'
import { pipelineScenario } from './pipeline.ts'
import { pipelineCpuScenario } from './pipeline-cpu.ts'
import { fleetScenario, parseFleetArgs } from './fleet.ts'
import { connectionsScenario } from './connections.ts'

/*
 * `npm run bench [-- --quick] [-- --profile] [-- --only=1,2,3,4,5,6]`: one run applies
 * the same load to plain aedes, our broker (capture on) and Mosquitto, and prints
 * medians (min–max) over 3 repetitions plus the ratios. See docs/performance.md.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const profile = args.includes('--profile')
const onlyArg = args.find((a) => a.startsWith('--only='))
const only = new Set((onlyArg ? onlyArg.slice('--only='.length) : quick ? '1,2' : '1,2,3,4,5,6').split(','))
const fleet = parseFleetArgs(args, quick)
const latencyRateArg = args.find((a) => a.startsWith('--latency-rate='))
const latencyRate = latencyRateArg ? Number(latencyRateArg.slice('--latency-rate='.length)) : undefined
const reps = Number(args.find((a) => a.startsWith('--reps='))?.slice('--reps='.length) ?? 3)

const sizes = {
  qos0: { connections: 4, perConnection: quick ? 25_000 : 100_000, payloadBytes: 64, window: 100 },
  qos1: { connections: 4, perConnection: quick ? 5_000 : 25_000, payloadBytes: 64, window: 100 },
  pingpong: { count: quick ? 500 : 3000, warmup: 100 },
} satisfies { qos0: ThroughputSizes; qos1: ThroughputSizes; pingpong: { count: number; warmup: number } }

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`)
}

async function packageVersion(name: string): Promise<string> {
  const pkg = JSON.parse(await readFile(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }
  return pkg.version
}

function commandVersion(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]?.trim() ?? 'unknown'
}

/*
 * A scenario whose service is missing would report numbers without it (Mosquitto's
 * column empty, no pipeline at all): refuse to start instead, naming what is missing.
 */
function requireServices(): void {
  const missing: string[] = []
  if (!hasCommand('redis-server')) missing.push('redis-server (every scenario): apt-get install redis-server, or scripts/install-services.sh')
  if (['1', '2', '4'].some((s) => only.has(s)) && !hasCommand(MOSQUITTO_BIN)) missing.push(`mosquitto at ${MOSQUITTO_BIN} (scenarios 1, 2, 4 compare against it): apt-get install mosquitto`)
  if (['3', '5', '6'].some((s) => only.has(s)) && !findGoTool('ferretdb', process.env.FERRETDB_BIN)) missing.push('ferretdb (scenarios 3, 5, 6): scripts/install-ferretdb.sh, or FERRETDB_BIN=<path>')
  if (missing.length > 0) throw new Error(`missing services, nothing measured:\n  - ${missing.join('\n  - ')}`)
}

async function main(): Promise<void> {
  requireServices()
  const started = new Date()
  const work = join(root, '.mqfn', 'bench')
  await mkdir(work, { recursive: true })
  if (!args.includes('--no-build')) {
    log('npm run build')
    const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
    if (r.status !== 0) throw new Error('npm run build failed')
  }
  // The load generator and the baseline broker run as plain node bundles: no TS loader in the measured processes.
  await build({
    entryPoints: { load: join(root, 'bench/load.ts'), 'plain-aedes': join(root, 'bench/plain-aedes.ts') },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outdir: work, outExtension: { '.js': '.mjs' }, logLevel: 'warning',
  })
  const loadScript = join(work, 'load.mjs')

  const dir = await mkdtemp(join(tmpdir(), 'mqfn-bench-'))
  const redis = await startRedis({ dir })
  const redisUrl = `redis://127.0.0.1:${redis.port}`
  let mongo: ManagedProcess | undefined
  const redisClient = new Redis(redisUrl, { lazyConnect: true })
  await redisClient.connect()
  const prefix = '{bench}'
  const rows: Row[] = []
  const extra: Record<string, unknown> = {}
  const notes: string[] = []

  const targets: Target[] = []
  try {
    targets.push(await startPlainAedes(join(work, 'plain-aedes.mjs')))
    targets.push(await startMqfn({ root, redisUrl, prefix }))
    // A/B in one run: another build of ours (e.g. a worktree of the commit before) beside this one
    const baseline = process.env.MQFN_BENCH_BASELINE
    if (baseline) targets.push(await startMqfn({ root, redisUrl, prefix: '{benchbase}', bundle: baseline }))
    if (['1', '2', '4'].some((s) => only.has(s))) {
      const mosq = await startMosquitto(dir)
      if (!mosq) throw new Error(`Mosquitto not found at ${MOSQUITTO_BIN}`)
      targets.push(mosq)
    }
    const names = targets.map((t) => t.name)
    log(`targets: ${targets.map((t) => `${t.name}@${t.port}`).join(', ')}; repetitions: ${reps}`)

    if (only.has('1')) {
      for (const qos of [0, 1] as const) {
        const s = qos === 0 ? sizes.qos0 : sizes.qos1
        const pubRates: Record<string, number[]> = {}
        const delRates: Record<string, number[]> = {}
        const lost: Record<string, number[]> = {}
        const brokerCpu: Record<string, number[]> = {}
        const mainCpu: Record<string, number[]> = {}
        const redisCpu: Record<string, number[]> = {}
        for (let rep = 0; rep < reps; rep++) {
          for (const t of targets) {
            // an empty Redis each time: the capture's cost must not grow with the run
            await redisClient.flushall()
            const r = await throughputRun(loadScript, t, qos, s, `q${qos}r${rep}${t.name}`, t.name === 'mqfn' || t.name === 'baseline' ? redis.child.pid : undefined)
            ;(brokerCpu[t.name] ??= []).push(r.brokerCpuPer1k)
            ;(mainCpu[t.name] ??= []).push(r.mainCpuPer1k)
            if (t.name === 'mqfn' || t.name === 'baseline') (redisCpu[t.name] ??= []).push(r.redisCpuPer1k)
            ;(pubRates[t.name] ??= []).push(r.publishRate)
            ;(delRates[t.name] ??= []).push(r.deliveredRate)
            ;(lost[t.name] ??= []).push(r.sent - r.delivered)
            log(`QoS ${qos} rep ${rep + 1} ${t.name}: publish ${Math.round(r.publishRate)}/s, delivered ${Math.round(r.deliveredRate)}/s (${r.delivered}/${r.sent})`)
          }
        }
        const label = `1. ${s.connections} pub → 1 sub, QoS ${qos}, ${s.payloadBytes} B, ${s.connections * s.perConnection} msgs`
        rows.push({ scenario: label, metric: 'publish', unit: 'msg/s', better: 'higher', values: mapSummaries(pubRates) })
        rows.push({ scenario: label, metric: 'delivered', unit: 'msg/s', better: 'higher', values: mapSummaries(delRates) })
        rows.push({ scenario: label, metric: 'not delivered', unit: 'msgs', better: 'lower', values: mapSummaries(lost) })
        rows.push({ scenario: label, metric: 'broker CPU per 1k msgs', unit: 'ms', better: 'lower', values: mapSummaries(brokerCpu) })
        rows.push({ scenario: label, metric: 'broker main-thread CPU per 1k msgs', unit: 'ms', better: 'lower', values: mapSummaries(mainCpu) })
        rows.push({ scenario: label, metric: 'Redis CPU per 1k msgs', unit: 'ms', better: 'lower', values: mapSummaries(redisCpu) })
      }
    }

    if (only.has('2')) {
      const p50: Record<string, number[]> = {}
      const p99: Record<string, number[]> = {}
      const pings: number[] = []
      const floors: number[] = []
      for (let rep = 0; rep < reps; rep++) {
        for (const t of targets) {
          await redisClient.flushall()
          const r = await pingPongRun(loadScript, t, sizes.pingpong.count, sizes.pingpong.warmup, `pp${rep}${t.name}`)
          ;(p50[t.name] ??= []).push(r.p50)
          ;(p99[t.name] ??= []).push(r.p99)
          log(`ping-pong rep ${rep + 1} ${t.name}: p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms`)
        }
        // The floor of a broker that makes one durable Redis write before the PUBACK:
        // plain aedes' p50 plus one Redis round trip, both from this repetition.
        const ping = await redisPingP50(redisClient, sizes.pingpong.count)
        pings.push(ping)
        floors.push((p50['plain-aedes']?.[rep] ?? Number.NaN) + ping)
        log(`ping-pong rep ${rep + 1}: Redis PING p50 ${ping.toFixed(3)} ms, floor ${(floors[rep] as number).toFixed(3)} ms`)
      }
      const label = `2. QoS 1 ping-pong, ${sizes.pingpong.count} round trips`
      rows.push({ scenario: label, metric: 'p50', unit: 'ms', better: 'lower', values: mapSummaries(p50) })
      rows.push({ scenario: label, metric: 'p99', unit: 'ms', better: 'lower', values: mapSummaries(p99) })
      rows.push({ scenario: label, metric: 'Redis PING round trip p50', unit: 'ms', better: 'lower', values: { mqfn: summarize(pings) } })
      rows.push({ scenario: label, metric: 'floor: plain-aedes p50 + Redis PING p50', unit: 'ms', better: 'lower', values: { mqfn: summarize(floors) } })
      const overFloor = (name: string) => summarize((p50[name] ?? []).map((v, i) => v / (floors[i] as number)))
      rows.push({ scenario: label, metric: 'ours p50 / floor (target ≤ 1.25)', unit: '×', better: 'lower', values: { mqfn: overFloor('mqfn'), ...(p50.baseline ? { baseline: overFloor('baseline') } : {}) } })
    }

    if (['3', '5', '6'].some((s) => only.has(s))) {
      await mkdir(join(dir, 'ferret'), { recursive: true })
      mongo = await startFerretdb(join(dir, 'ferret'))
    }
    const mongoUrl = `mongodb://127.0.0.1:${mongo?.port ?? 0}/`

    if (only.has('3')) {
      const mqfn = targets.find((t) => t.name === 'mqfn') as Target
      const r = await pipelineScenario({ root, work, loadScript, redisUrl, mongoUrl, prefix, target: mqfn, redis: redisClient, quick, reps, log, ...(latencyRate === undefined ? {} : { latencyRate }) })
      rows.push(...r.rows)
      extra.pipeline = r.details
    }

    if (only.has('5')) {
      const mqfn = targets.find((t) => t.name === 'mqfn') as Target
      await redisClient.flushall()
      const r = await pipelineCpuScenario({ root, work, loadScript, redisUrl, mongoUrl, prefix, target: mqfn, redis: redisClient, redisPid: redis.child.pid as number, mongoPid: mongo?.child.pid as number, quick, reps, log })
      rows.push(...r.rows)
      extra.pipelineCpu = r.details
    }

    if (only.has('6')) {
      await redisClient.flushall()
      const r = await fleetScenario({ root, work, loadScript, redisUrl, mongoUrl, prefix: '{benchfleet}', redis: redisClient, redisPid: redis.child.pid as number, mongoPid: mongo?.child.pid as number, fleet, log })
      rows.push(...r.rows)
      extra.fleet = r.details
    }

    if (only.has('4')) {
      // a fresh process for each broker: RSS after the earlier scenarios would mislead
      for (const t of targets) await t.stop()
      targets.length = 0
      const r = await connectionsScenario({ root, work, dir, loadScript, redisUrl, prefix: '{benchconn}', redis: redisClient, quick, log })
      rows.push(...r.rows)
      extra.connections = r.details
    }

    if (profile) {
      for (const t of targets) await t.stop()
      targets.length = 0
      await redisClient.flushall()
      extra.profile = await profileRun({ root, work, loadScript, plainBundle: join(work, 'plain-aedes.mjs'), redisUrl, prefix, sizes: { 0: sizes.qos0, 1: sizes.qos1 }, log })
    }

    const report = table(rows, names)
    const command = `npm run bench${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`
    process.stdout.write(`\n${command}\n\n${report}\n\n`)
    for (const n of notes) process.stdout.write(`note: ${n}\n`)

    const ratios = rows.map((r) => ({ scenario: r.scenario, metric: r.metric, oursOverAedes: ratio(r.values.mqfn, r.values['plain-aedes']) ?? null, oursOverMosquitto: ratio(r.values.mqfn, r.values.mosquitto) ?? null }))
    const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryMb: Math.round(totalmem() / 2 ** 20), node: process.version, kernel: release(), hostname: hostname() }
    const versions = {
      aedes: await packageVersion('aedes'), bullmq: await packageVersion('bullmq'), ioredis: await packageVersion('ioredis'), 'mqtt-packet': await packageVersion('mqtt-packet'),
      mosquitto: commandVersion(MOSQUITTO_BIN, ['-h']), redis: commandVersion('redis-server', ['--version']),
    }
    const out = { command, startedAt: started.toISOString(), finishedAt: new Date().toISOString(), quick, repetitions: reps, sizes, machine, versions, rows, ratios, notes, ...extra, table: report }
    await mkdir(join(root, 'bench-results'), { recursive: true })
    const file = join(root, 'bench-results', `${started.toISOString().replace(/[:.]/g, '-')}.json`)
    await writeFile(file, `${JSON.stringify(out, null, 2)}\n`)
    process.stdout.write(`results: ${file}\n`)
  } finally {
    for (const t of targets) await t.stop()
    redisClient.disconnect()
    await redis.stop()
    await mongo?.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Median of `count` sequential PINGs from this process: one Redis round trip on loopback. */
async function redisPingP50(redis: Redis, count: number): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const start = nowMs()
    await redis.ping()
    times.push(nowMs() - start)
  }
  return percentile(times.sort((a, b) => a - b), 50)
}

function mapSummaries(byTarget: Record<string, number[]>): Partial<Record<string, Summary>> {
  return Object.fromEntries(Object.entries(byTarget).map(([k, v]) => [k, summarize(v)]))
}

try {
  await main()
} catch (err) {
  process.stderr.write(`[bench] FAILED: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}
// Exit even if a driver left a socket or timer behind: the children die with us (children.ts).
process.exit(0)

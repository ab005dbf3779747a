import { join } from 'node:path'
import { MongoClient } from 'mongodb'
import { queueName } from '../common/queues.ts'
import { startWorker, stop, warmUp, type PipelineStack } from './pipeline.ts'
import type { Row } from './report.ts'
import { startLoad } from './run-load.ts'
import { summarize } from './stats.ts'
import { cpuMs, rssMb, startMqfn } from './targets.ts'

/*
 * Scenario 6: a fleet. Many devices, each publishing a QoS 1 sensor reading at a modest
 * steady rate for minutes, through the shipped functions/ (published.ts stores each
 * reading) on a fresh broker and one worker. Sampled over time: the published queue's
 * waiting jobs and every process's RSS; at the end, every acknowledged reading must be
 * in `readings`. `--fleet-devices=500 --fleet-rate=2 --fleet-minutes=10` sets the load.
 */

export interface FleetLoad {
  devices: number
  /** Messages per second per device. */
  rate: number
  minutes: number
}

export function parseFleetArgs(args: readonly string[], quick: boolean): FleetLoad {
  const flag = (name: string, fallback: number) => {
    const raw = args.find((a) => a.startsWith(`--fleet-${name}=`))?.slice(`--fleet-${name}=`.length)
    const n = raw === undefined ? fallback : Number(raw)
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--fleet-${name} expects a positive number, got "${raw}"`)
    return n
  }
  return { devices: Math.round(flag('devices', quick ? 200 : 500)), rate: flag('rate', 2), minutes: flag('minutes', quick ? 0.5 : 2) }
}

export interface FleetOptions extends PipelineStack {
  redisPid: number
  mongoPid: number
  fleet: FleetLoad
}

interface Sample {
  /** Seconds since the load started. */
  t: number
  waiting: number
  rssMb: { broker: number; worker: number; redis: number; ferretdb: number }
}

/** Devices per load process: one process holds a few thousand sockets and timers comfortably. */
const PER_PROCESS = 2500

export async function fleetScenario(o: FleetOptions): Promise<{ rows: Row[]; details: unknown }> {
  const { devices, rate, minutes } = o.fleet
  const tag = 'fleet'
  const database = 'fleet'
  const broker = await startMqfn({ root: o.root, redisUrl: o.redisUrl, prefix: o.prefix })
  const worker = startWorker(o, join(o.root, 'functions'), database)
  const mongo = new MongoClient(o.mongoUrl)
  const samples: Sample[] = []
  try {
    await mongo.connect()
    const readings = mongo.db(database).collection('readings')
    const waitKey = `${o.prefix}:${queueName('published')}:wait`
    const jobs = Array.from({ length: Math.ceil(devices / PER_PROCESS) }, (_, i) => ({
      role: 'fleet' as const, port: broker.port, first: i * PER_PROCESS, devices: Math.min(PER_PROCESS, devices - i * PER_PROCESS),
      ratePerDevice: rate, durationMs: minutes * 60_000, localAddresses: ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'], tag,
    }))
    await warmUp(o, broker.port, 'sensors/warm-up/x', readings)
    const before = await readings.estimatedDocumentCount()
    const sampleMs = minutes <= 1 ? 2000 : 5000
    const t0 = Date.now()
    const sample = async () => {
      samples.push({
        t: (Date.now() - t0) / 1000,
        waiting: await o.redis.llen(waitKey),
        rssMb: { broker: rssMb(broker.pid), worker: rssMb(worker.pid as number), redis: rssMb(o.redisPid), ferretdb: rssMb(o.mongoPid) },
      })
    }
    const pids = { broker: broker.pid, worker: worker.pid as number, redis: o.redisPid, ferretdb: o.mongoPid }
    const cpuAt = () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)])) as Record<keyof typeof pids, number>
    const cpu0 = cpuAt()
    const timer = setInterval(() => void sample().catch(() => {}), sampleMs)
    let results
    try {
      results = await startLoad(o.loadScript, jobs).results
    } finally {
      clearInterval(timer)
    }
    await sample()
    // CPU share of one core each process used while the devices sent: where the machine's time went
    const loadSec = (Date.now() - t0) / 1000
    const cpu1 = cpuAt()
    const cpuPct = Object.fromEntries(Object.keys(pids).map((k) => [k, (cpu1[k as keyof typeof pids] - cpu0[k as keyof typeof pids]) / 10 / loadSec])) as Record<keyof typeof pids, number>
    const acked = results.reduce((n, r) => n + (r.role === 'fleet' ? r.acked : 0), 0)
    const sent = results.reduce((n, r) => n + (r.role === 'fleet' ? r.sent : 0), 0)
    const waitingAtEnd = samples[samples.length - 1]?.waiting ?? 0
    // What the worker still has to do once the devices stop (a pipeline that kept up has
    // nothing), from the queue in Redis. The store is counted once, at the end: FerretDB
    // 1.24 answers every count, estimatedDocumentCount too, by reading the whole
    // collection in one read transaction, and counting while the devices sent stalled the
    // pipeline it measured (SQLite cannot checkpoint its WAL meanwhile).
    const drainStart = Date.now()
    const queued = async () => {
      const base = `${o.prefix}:${queueName('published')}`
      const [wait, active, delayed, prioritized] = await Promise.all([o.redis.llen(`${base}:wait`), o.redis.llen(`${base}:active`), o.redis.zcard(`${base}:delayed`), o.redis.zcard(`${base}:prioritized`)])
      return wait + active + delayed + prioritized
    }
    while ((await queued()) > 0 && Date.now() - drainStart < 120_000) await new Promise((r) => setTimeout(r, 200))
    const drainSec = (Date.now() - drainStart) / 1000
    const stored = (await readings.estimatedDocumentCount()) - before
    const mostWaiting = Math.max(...samples.map((s) => s.waiting))
    const sorted = samples.map((s) => s.waiting).sort((a, b) => a - b)
    const medianWaiting = sorted[Math.floor(sorted.length / 2)] ?? 0
    o.log(`fleet ${devices} devices × ${rate}/s × ${minutes} min: sent ${sent}, acked ${acked}, stored ${stored} (${acked - stored} missing after ${drainSec.toFixed(1)} s), jobs waiting median ${medianWaiting} / most ${mostWaiting} / at end ${waitingAtEnd}`)
    o.log(`  CPU while the devices sent, % of one core: ${Object.entries(cpuPct).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`)
    for (const s of samples) o.log(`  t=${s.t.toFixed(0)} s waiting ${s.waiting}, RSS MB broker ${s.rssMb.broker.toFixed(0)} worker ${s.rssMb.worker.toFixed(0)} redis ${s.rssMb.redis.toFixed(0)} ferretdb ${s.rssMb.ferretdb.toFixed(0)}`)
    const label = `6. fleet, ${devices.toLocaleString('en-US')} devices × ${rate} msg/s × ${minutes} min, shipped functions/`
    const one = (metric: string, unit: string, better: Row['better'], v: number): Row => ({ scenario: label, metric, unit, better, values: { mqfn: summarize([v]) } })
    const first = samples[0]?.rssMb
    const last = samples[samples.length - 1]?.rssMb
    const rows: Row[] = [
      one('acked', 'msgs', 'higher', acked),
      one('acked but not stored', 'msgs', 'lower', acked - stored),
      one('jobs waiting, median of samples', 'jobs', 'lower', medianWaiting),
      one('jobs waiting, most', 'jobs', 'lower', mostWaiting),
      one('jobs waiting when the load stopped', 'jobs', 'lower', waitingAtEnd),
      one('drain after the load', 's', 'lower', drainSec),
    ]
    for (const p of ['broker', 'worker', 'redis', 'ferretdb'] as const) {
      if (first && last) rows.push(one(`${p} RSS first → last sample`, 'MB', 'lower', last[p] - first[p]))
    }
    for (const p of ['broker', 'worker', 'redis', 'ferretdb'] as const) rows.push(one(`${p} CPU while the devices sent`, '% of a core', 'lower', cpuPct[p]))
    return { rows, details: { devices, rate, minutes, sent, acked, stored, drainSec, cpuPct, samples } }
  } finally {
    await stop(worker)
    await broker.stop()
    await mongo.close()
  }
}

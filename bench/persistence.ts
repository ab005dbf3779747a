import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { Redis } from 'ioredis'
import { startRedis } from '../scripts/services.ts'
import { summarize, type Summary } from './stats.ts'
import { startMqfn, type Target } from './targets.ts'
import { pingPongRun, throughputRun, type ThroughputSizes } from './throughput.ts'

/*
 * `npx tsx bench/persistence.ts [--quick] [--reps=3] [--no-build]`: our broker
 * with `MQFN_PERSISTENCE=memory` against `redis`, one broker each, the same load in
 * turn, on one Redis. Prints medians (min–max) and redis/memory ratios; docs/cluster.md
 * has the figures. Absolute rates depend on the machine, the ratios much less.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const reps = Number(args.find((a) => a.startsWith('--reps='))?.slice('--reps='.length) ?? 3)
const qos1: ThroughputSizes = { connections: 4, perConnection: quick ? 5_000 : 25_000, payloadBytes: 64, window: 100 }
const pingpong = { count: quick ? 500 : 3000, warmup: 100 }
const modes = ['memory', 'redis'] as const
type Mode = (typeof modes)[number]

function log(msg: string): void {
  process.stderr.write(`[bench:persistence] ${msg}\n`)
}

async function main(): Promise<void> {
  const work = join(root, '.mqfn', 'bench')
  await mkdir(work, { recursive: true })
  if (!args.includes('--no-build')) {
    const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
    if (r.status !== 0) throw new Error('npm run build failed')
  }
  await build({ entryPoints: { load: join(root, 'bench/load.ts') }, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outdir: work, outExtension: { '.js': '.mjs' }, logLevel: 'warning' })
  const loadScript = join(work, 'load.mjs')
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-bench-persistence-'))
  const redis = await startRedis({ dir })
  const redisUrl = `redis://127.0.0.1:${redis.port}`
  const client = new Redis(redisUrl)
  const targets = new Map<Mode, Target>()
  const figures = new Map<string, Record<Mode, number[]>>()
  const record = (metric: string, mode: Mode, value: number) => {
    const row = figures.get(metric) ?? { memory: [], redis: [] }
    row[mode].push(value)
    figures.set(metric, row)
  }
  try {
    for (const mode of modes) targets.set(mode, await startMqfn({ root, redisUrl, prefix: `{bench-${mode}}`, env: { MQFN_PERSISTENCE: mode } }))
    for (let rep = 0; rep < reps; rep++) {
      for (const mode of modes) {
        const t = targets.get(mode) as Target
        for (const clean of [true, false]) {
          // no worker drains the event queues: an empty Redis each time, as in main.ts
          await client.flushall()
          const label = clean ? 'clean subscriber' : 'persistent subscriber'
          const r = await throughputRun(loadScript, t, 1, qos1, `p${rep}${mode}${clean ? 'c' : 'p'}`, redis.child.pid, clean)
          record(`QoS 1, ${label}: publish (msg/s)`, mode, r.publishRate)
          record(`QoS 1, ${label}: delivered (msg/s)`, mode, r.deliveredRate)
          record(`QoS 1, ${label}: not delivered (msgs)`, mode, r.sent - r.delivered)
          record(`QoS 1, ${label}: broker CPU per 1k msgs (ms)`, mode, r.brokerCpuPer1k)
          record(`QoS 1, ${label}: Redis CPU per 1k msgs (ms)`, mode, r.redisCpuPer1k)
          log(`rep ${rep + 1} ${mode} ${label}: publish ${Math.round(r.publishRate)}/s, delivered ${Math.round(r.deliveredRate)}/s (${r.delivered}/${r.sent})`)
        }
        const pp = await pingPongRun(loadScript, t, pingpong.count, pingpong.warmup, `pp${rep}${mode}`)
        record('QoS 1 ping-pong p50 (ms)', mode, pp.p50)
        record('QoS 1 ping-pong p99 (ms)', mode, pp.p99)
        log(`rep ${rep + 1} ${mode} ping-pong: p50 ${pp.p50.toFixed(3)} ms`)
      }
    }
  } finally {
    for (const t of targets.values()) await t.stop()
    client.disconnect()
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  }
  const fmt = (s: Summary) => `${s.median.toFixed(s.median >= 100 ? 0 : 2)} (${s.min.toFixed(s.min >= 100 ? 0 : 2)}–${s.max.toFixed(s.max >= 100 ? 0 : 2)})`
  const lines = ['| metric | memory | redis | redis/memory |', '| --- | --- | --- | --- |']
  for (const [metric, row] of figures) {
    const m = summarize(row.memory)
    const r = summarize(row.redis)
    lines.push(`| ${metric} | ${fmt(m)} | ${fmt(r)} | ${m.median === 0 ? '–' : (r.median / m.median).toFixed(2)} |`)
  }
  process.stdout.write(`\nnpx tsx bench/persistence.ts ${args.join(' ')}\n${reps} repetitions, ${qos1.connections} publishers × ${qos1.perConnection} msgs of ${qos1.payloadBytes} B → 1 subscriber, window ${qos1.window}\n\n${lines.join('\n')}\n`)
}

await main()
process.exit(0)

import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startMqfn, startPlainAedes } from './targets.ts'
import { throughputRun, type ThroughputSizes } from './throughput.ts'

/*
 * Runs the brokers under `node --cpu-prof` through throughput runs and reduces each
 * V8 profile to self time per function and per package.
 */

interface CpuProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
}

interface CpuProfile {
  nodes: CpuProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface SelfTime {
  name: string
  ms: number
  percent: number
}


function where(url: string, functionName: string): string {
  // V8's pseudo-frames: kept apart, so idle time and GC are not counted as native code
  if (functionName === '(idle)' || functionName === '(garbage collector)' || functionName === '(program)') return functionName
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm) return nm[1] as string
  if (url.startsWith('node:') || url === '') return url === '' ? '(native/V8)' : 'node core'
  if (url.includes('/dist/mqfn.js')) return 'mqfn (dist/mqfn.js)'
  return url
}

export function summarizeProfile(p: CpuProfile, top = 60): { totalMs: number; topFunctions: SelfTime[]; byPackage: SelfTime[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  // Start-up (module loading, connecting to Redis) is not what is measured: samples
  // count from the first one in mqtt-packet's parse(), i.e. once the load generator's
  // packets arrive (the module's own top-level code, sampled while it loads, is anonymous).
  const first = p.samples.findIndex((id) => {
    const frame = byId.get(id)?.callFrame
    return frame !== undefined && frame.functionName === 'parse' && frame.url.includes('mqtt-packet')
  })
  let totalUs = 0
  p.samples.forEach((id, i) => {
    if (i < first) return
    const us = p.timeDeltas[i] ?? 0
    selfUs.set(id, (selfUs.get(id) ?? 0) + us)
    totalUs += us
  })
  const fns = new Map<string, number>()
  const pkgs = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const n = byId.get(id)
    if (!n) continue
    const { functionName, url, lineNumber } = n.callFrame
    const file = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')
    const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim()
    fns.set(key, (fns.get(key) ?? 0) + us)
    const pkg = where(url, functionName)
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us)
  }
  const list = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, us]) => ({ name, ms: Math.round(us / 1000), percent: Math.round((us / totalUs) * 1000) / 10 }))
  return { totalMs: Math.round(totalUs / 1000), topFunctions: list(fns, top), byPackage: list(pkgs, 12) }
}

export interface ProfiledRun {
  target: string
  qos: 0 | 1
  messages: number
  publishRate: number
  file: string
  /** Self time per message, by package and by function (top 20). */
  perMessage: { byPackage: { name: string; us: number }[]; topFunctions: { name: string; us: number }[] }
  summary: ReturnType<typeof summarizeProfile>
}

export interface ProfileComparison {
  runs: ProfiledRun[]
  /** Per package: µs of self time per message, plain aedes and ours, at each QoS. */
  byPackage: { qos: 0 | 1; name: string; plainUs: number; oursUs: number }[]
}

const perMessage = (list: SelfTime[], messages: number) => list.map((f) => ({ name: f.name, us: Math.round((f.ms * 1000 / messages) * 100) / 100 }))

/*
 * Plain aedes and our broker, each under `node --cpu-prof` through one QoS 0 and one
 * QoS 1 run of the same load: self time per message, by package, side by side, so
 * what capture adds is read off the difference rather than guessed from one profile.
 */
export async function profileRun(o: { root: string; work: string; loadScript: string; plainBundle: string; redisUrl: string; prefix: string; sizes: Record<0 | 1, ThroughputSizes>; log: (m: string) => void }): Promise<ProfileComparison> {
  const runs: ProfiledRun[] = []
  for (const qos of [0, 1] as const) {
    for (const target of ['plain-aedes', 'mqfn'] as const) {
      const dir = join(o.work, 'cpuprof', `${target}-qos${qos}`)
      await rm(dir, { recursive: true, force: true })
      await mkdir(dir, { recursive: true })
      const broker = target === 'mqfn'
        ? await startMqfn({ root: o.root, redisUrl: o.redisUrl, prefix: o.prefix, cpuProfDir: dir })
        : await startPlainAedes(o.plainBundle, dir)
      const sizes = o.sizes[qos]
      let publishRate: number
      try {
        publishRate = (await throughputRun(o.loadScript, broker, qos, sizes, `profile${qos}`)).publishRate
      } finally {
        await broker.stop()
      }
      const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'))
      if (!file) throw new Error(`no .cpuprofile written in ${dir}`)
      const summary = summarizeProfile(JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile)
      const messages = sizes.connections * sizes.perConnection
      runs.push({ target, qos, messages, publishRate, file: join(dir, file), perMessage: { byPackage: perMessage(summary.byPackage, messages), topFunctions: perMessage(summary.topFunctions, messages) }, summary })
      o.log(`profile ${target} QoS ${qos} (${Math.round(publishRate)}/s under --cpu-prof): ${join(dir, file)}`)
    }
  }
  const byPackage: ProfileComparison['byPackage'] = []
  const lines: string[] = []
  for (const qos of [0, 1] as const) {
    const plain = runs.find((r) => r.qos === qos && r.target === 'plain-aedes') as ProfiledRun
    const ours = runs.find((r) => r.qos === qos && r.target === 'mqfn') as ProfiledRun
    const names = [...new Set([...ours.perMessage.byPackage, ...plain.perMessage.byPackage].map((p) => p.name))]
    const us = (r: ProfiledRun, name: string) => r.perMessage.byPackage.find((p) => p.name === name)?.us ?? 0
    const total = (r: ProfiledRun) => r.perMessage.byPackage.reduce((a, p) => a + p.us, 0)
    lines.push(`\nself time per message, QoS ${qos} (µs; (idle) is time waiting): plain aedes ${total(plain).toFixed(1)}, ours ${total(ours).toFixed(1)}`)
    for (const name of names.sort((a, b) => us(ours, b) - us(plain, b) - (us(ours, a) - us(plain, a)))) {
      byPackage.push({ qos, name, plainUs: us(plain, name), oursUs: us(ours, name) })
      lines.push(`  ${us(plain, name).toFixed(2).padStart(7)}  ${us(ours, name).toFixed(2).padStart(7)}  ${(us(ours, name) - us(plain, name) >= 0 ? '+' : '') + (us(ours, name) - us(plain, name)).toFixed(2)}  ${name}`)
    }
    for (const r of [plain, ours]) lines.push(`top self time, ${r.target}, QoS ${qos} (µs per message):`, ...r.perMessage.topFunctions.slice(0, 12).map((f) => `  ${f.us.toFixed(2).padStart(7)}  ${f.name}`))
    const fnUs = (r: ProfiledRun, name: string) => r.perMessage.topFunctions.find((f) => f.name === name)?.us ?? 0
    const fnNames = [...new Set([...ours.perMessage.topFunctions, ...plain.perMessage.topFunctions].map((f) => f.name))]
    const diffs = fnNames.map((name) => ({ name, d: fnUs(ours, name) - fnUs(plain, name) })).sort((a, b) => b.d - a.d).slice(0, 15)
    lines.push(`largest differences by function, ours − plain aedes, QoS ${qos} (µs per message; top ${ours.perMessage.topFunctions.length} of each):`, ...diffs.map((f) => `  ${(f.d >= 0 ? '+' : '') + f.d.toFixed(2).padStart(6)}  ${f.name}`))
  }
  process.stdout.write(`${lines.join('\n')}\n`)
  return { runs, byPackage }
}

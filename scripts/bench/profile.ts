import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startMqfn } from './targets.ts'
import { throughputRun, type ThroughputSizes } from './throughput.ts'

/*
 * Runs our broker under `node --cpu-prof` through one QoS 1 throughput run and
 * reduces the V8 profile to self time per function and per package.
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

export interface ProfileSummary {
  file: string
  totalMs: number
  publishRate: number
  topFunctions: SelfTime[]
  byPackage: SelfTime[]
}

function where(url: string): string {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm) return nm[1] as string
  if (url.startsWith('node:') || url === '') return url === '' ? '(native/V8)' : 'node core'
  if (url.includes('/dist/mqfn.js')) return 'mqfn (dist/mqfn.js)'
  return url
}

export function summarizeProfile(p: CpuProfile, top = 20): { totalMs: number; topFunctions: SelfTime[]; byPackage: SelfTime[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)))
  const totalUs = p.timeDeltas.reduce((a, b) => a + b, 0)
  const fns = new Map<string, number>()
  const pkgs = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const n = byId.get(id)
    if (!n) continue
    const { functionName, url, lineNumber } = n.callFrame
    const file = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')
    const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim()
    fns.set(key, (fns.get(key) ?? 0) + us)
    const pkg = where(url)
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us)
  }
  const list = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, us]) => ({ name, ms: Math.round(us / 1000), percent: Math.round((us / totalUs) * 1000) / 10 }))
  return { totalMs: Math.round(totalUs / 1000), topFunctions: list(fns, top), byPackage: list(pkgs, 12) }
}

export async function profileRun(o: { root: string; work: string; loadScript: string; redisUrl: string; prefix: string; sizes: ThroughputSizes; log: (m: string) => void }): Promise<ProfileSummary> {
  const dir = join(o.work, 'cpuprof')
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const broker = await startMqfn({ root: o.root, redisUrl: o.redisUrl, prefix: o.prefix, cpuProfDir: dir })
  let publishRate: number
  try {
    publishRate = (await throughputRun(o.loadScript, broker, 1, o.sizes, 'profile')).publishRate
  } finally {
    await broker.stop()
  }
  const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'))
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`)
  const summary = summarizeProfile(JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile)
  o.log(`profile (QoS 1, ${Math.round(publishRate)}/s under --cpu-prof): ${join(dir, file)}`)
  const lines = [
    `\ntop self time, our broker under QoS 1 load (${summary.totalMs} ms sampled):`,
    ...summary.topFunctions.map((f) => `  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}`),
    'by package:',
    ...summary.byPackage.map((f) => `  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}`),
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
  return { file: join(dir, file), publishRate, ...summary }
}

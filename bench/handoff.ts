import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { WireEvent } from '../common/events.ts'
import { createLogger } from '../common/logger.ts'
import { Invoker } from '../runtime/invoke.ts'
import { loadHandlers } from '../runtime/load.ts'

/*
 * `flock /work/coord/bench.lock npx tsx bench/handoff.ts [concurrency]`: what handing
 * events to a handler's thread costs, alone: a no-op `published` handler run through
 * the worker's Invoker (its thread, its timer, its messages both ways), 4 batches of 125
 * events per turn as a burst of batch jobs gives them, and the CPU time of every thread
 * of this process per event, 5 repetitions after a warm-up. No store, no Redis: the
 * handler never touches ctx.db, whose client connects on first use only.
 * docs/performance.md, "Worker CPU per event", has its figures before and after.
 */

const concurrency = Number(process.argv[2] ?? 16)
const dir = await mkdtemp(join(tmpdir(), 'mqfn-handoff-'))
await mkdir(join(dir, 'functions'))
await writeFile(join(dir, 'functions', 'published.ts'), `import { defineHandler } from 'mqtt-functions'
export const config = { topic: 'bench/#', attempts: 1, concurrency: ${concurrency} }
export default defineHandler('published', async () => {})
`)
const log = createLogger('worker', 'warn')
const invoker = new Invoker({ mongoUrl: 'mongodb://127.0.0.1:9', database: 'handoff', redisUrl: 'redis://127.0.0.1:9', prefix: 'handoff', logLevel: 'warn', role: 'worker' }, log)
const loaded = await loadHandlers(join(dir, 'functions'), (file, module, display) => invoker.load(file, module, display))
const handler = loaded.handlers[0]
if (!handler) throw new Error(`the no-op handler did not load: ${loaded.errors.map((e) => e.error.message).join('; ')}`)

const payload = Buffer.alloc(64, 7).toString('base64')
let n = 0
const event = (): WireEvent => {
  n++
  return { id: `0mwwtbg0o-ABCDEFGH-${n.toString(36).padStart(6, '0')}`, ts: Date.now(), brokerId: 'broker-1', clientId: 'pub-1', epoch: 1, seq: n, prev: n - 1, type: 'published', topic: 'bench/handoff', payload, qos: 1, retain: false, dup: false, messageId: (n % 65535) + 1, remoteAddress: '127.0.0.1' }
}
const JOBS = 4
const PER_JOB = 125
const turn = () => Promise.all(Array.from({ length: JOBS }, () => Promise.all(Array.from({ length: PER_JOB }, () => invoker.invoke(handler, event(), 1)))))

for (let i = 0; i < 20; i++) await turn()
const TURNS = 20
for (let rep = 0; rep < 5; rep++) {
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < TURNS; i++) await turn()
  const cpu = process.cpuUsage(cpu0)
  console.log(`concurrency ${concurrency}, rep ${rep + 1}: ${((cpu.user + cpu.system) / (TURNS * JOBS * PER_JOB)).toFixed(1)} µs of CPU per event`)
}
await invoker.close()
await loaded.dispose()
await rm(dir, { recursive: true, force: true })

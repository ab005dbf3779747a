import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Job, Queue } from 'bullmq'
import { Redis } from 'ioredis'
import type { WireEvent } from '../common/events.ts'
import { BATCH_JOB_OPTIONS, JOB_BATCH, type BatchJobData } from '../common/queues.ts'
import { startRedis } from '../scripts/services.ts'

/*
 * `npx tsx bench/capture-write.ts`: what one flush of the broker's capture
 * costs, alone, on a Redis of its own (AOF everysec, as the bench's): CPU time of this
 * process and wall time per flush of two jobs (a QoS 1 flush holds `published` and
 * `delivered`) of 1, 50 and 500 events each, written
 *   - as before: Queue.addBulk per event type, in parallel (one pipeline each);
 *   - one pipeline for every job of the flush (Job.addJob), tried on the way;
 *   - as now: one EVALSHA per job on the shared connection, no pipeline;
 *   - as the lighter durable write docs/performance.md proposes: one RPUSH of the
 *     batches' JSON (no BullMQ job: what the ack path would cost if jobs were made later).
 * Building the events and their JSON is included in every variant ("build only" alone).
 */

type Variant = (events: number) => Promise<void>

function eventsOf(n: number, type: 'published' | 'delivered'): WireEvent[] {
  const out: WireEvent[] = []
  const ts = Date.now()
  for (let i = 0; i < n; i++) {
    out.push(type === 'published'
      ? { id: `0mwwtbg0o-ABCDEFGH-${i.toString(36).padStart(6, '0')}`, ts, brokerId: 'broker-1', clientId: 'pub-1', epoch: 1_764_000_000_000_000, seq: i + 1, prev: i, type, topic: 'bench/t/1', payload: Buffer.alloc(64, 7).toString('base64'), qos: 1, retain: false, dup: false, messageId: i + 1, remoteAddress: '127.0.0.1' }
      : { id: `0mwwtbg0o-ABCDEFGH-${i.toString(36).padStart(6, '0')}`, ts, brokerId: 'broker-1', clientId: 'sub-1', epoch: 1_764_000_000_000_000, seq: i + 1, prev: i, type, topic: 'bench/t/1', qos: 1, messageId: i + 1, remoteAddress: '127.0.0.1' })
  }
  return out
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-capture-write-'))
  const redis = await startRedis({ dir })
  const connection = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null })
  const prefix = '{cw}'
  const published = new Queue<BatchJobData>('published', { connection, prefix, defaultJobOptions: BATCH_JOB_OPTIONS })
  const delivered = new Queue<BatchJobData>('delivered', { connection, prefix, defaultJobOptions: BATCH_JOB_OPTIONS })
  await Promise.all([published.waitUntilReady(), delivered.waitUntilReady()])
  const client = await published.getBackend().client
  let seq = 0
  const data = (n: number, type: 'published' | 'delivered'): BatchJobData => ({ v: 1, events: eventsOf(n, type) })
  const variants: Record<string, Variant> = {
    'build only (events + JSON)': async (n) => {
      JSON.stringify(data(n, 'published'))
      JSON.stringify(data(n, 'delivered'))
    },
    'Queue.addBulk per type (before)': async (n) => {
      await Promise.all([
        published.addBulk([{ name: JOB_BATCH, data: data(n, 'published'), opts: { jobId: `a${++seq}` } }]),
        delivered.addBulk([{ name: JOB_BATCH, data: data(n, 'delivered'), opts: { jobId: `a${++seq}` } }]),
      ])
    },
    'one pipeline, Job.addJob': async (n) => {
      const pipeline = client.pipeline()
      for (const [queue, type] of [[published, 'published'], [delivered, 'delivered']] as const) {
        new Job(queue, JOB_BATCH, data(n, type), { ...BATCH_JOB_OPTIONS }, `b${++seq}`).addJob(pipeline).catch(() => {})
      }
      for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err
    },
    'two EVALSHAs, no pipeline (now)': async (n) => {
      await Promise.all(([[published, 'published'], [delivered, 'delivered']] as const).map(([queue, type]) =>
        new Job(queue, JOB_BATCH, data(n, type), { ...BATCH_JOB_OPTIONS }, `d${++seq}`).addJob(client)))
    },
    'one job, one EVALSHA (now, 1 type)': async (n) => {
      // one job of twice the events: the flush of a single event type
      await new Job(published, JOB_BATCH, { v: 1, events: [...eventsOf(n, 'published'), ...eventsOf(n, 'delivered')] }, { ...BATCH_JOB_OPTIONS }, `c${++seq}`).addJob(client)
    },
    'one RPUSH (lighter write)': async (n) => {
      await connection.rpush(`${prefix}:ingest`, JSON.stringify(data(n, 'published')), JSON.stringify(data(n, 'delivered')))
    },
  }
  process.stdout.write('| events per job | variant | CPU per flush (µs) | CPU per event (µs) | wall per flush (ms) |\n| --- | --- | --- | --- | --- |\n')
  try {
    for (const events of [1, 50, 500]) {
      const flushes = Math.round(20_000 / events)
      for (const [name, run] of Object.entries(variants)) {
        for (let i = 0; i < Math.min(200, flushes); i++) await run(events) // warm-up: JIT, scripts loaded
        const cpu0 = process.cpuUsage()
        const t0 = performance.now()
        for (let i = 0; i < flushes; i++) await run(events)
        const wall = performance.now() - t0
        const cpu = process.cpuUsage(cpu0)
        const cpuPerFlush = (cpu.user + cpu.system) / flushes
        process.stdout.write(`| ${events} | ${name} | ${cpuPerFlush.toFixed(0)} | ${(cpuPerFlush / (2 * events)).toFixed(2)} | ${(wall / flushes).toFixed(3)} |\n`)
        await published.obliterate({ force: true })
        await delivered.obliterate({ force: true })
        await connection.del(`${prefix}:ingest`)
      }
    }
  } finally {
    await Promise.all([published.close(), delivered.close()])
    connection.disconnect()
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

await main()

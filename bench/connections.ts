import type { Redis } from 'ioredis'
import { Queue } from 'bullmq'
import type { BatchJobData } from '../common/queues.ts'
import type { Row } from './report.ts'
import { startLoad } from './run-load.ts'
import { summarize } from './stats.ts'
import { rssMb, startMosquitto, startMqfn, startPlainAedes, type Target } from './targets.ts'
import { join } from 'node:path'

/*
 * Scenario 4: many idle clients. Each broker starts fresh; the clients connect
 * `parallel` at a time from several loopback source addresses (a source address
 * has ~28k ephemeral ports). Reported: time to connect them all, broker RSS with
 * them connected, and for our broker how many clientConnected events Redis holds.
 */

export interface ConnectionsOptions {
  root: string
  work: string
  dir: string
  loadScript: string
  redisUrl: string
  prefix: string
  redis: Redis
  quick: boolean
  log: (m: string) => void
}

async function capturedConnects(o: ConnectionsOptions, tag: string, expected: number): Promise<number> {
  // BullMQ leaves a connection it was given open: ours to close
  const connection = o.redis.duplicate()
  const queue = new Queue<BatchJobData>('clientConnected', { connection, prefix: o.prefix })
  try {
    const deadline = Date.now() + 15_000
    for (;;) {
      const jobs = await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed'])
      const n = jobs.reduce((sum, j) => sum + (j?.data.events ?? []).filter((e) => 'clientId' in e && typeof e.clientId === 'string' && e.clientId.startsWith(tag)).length, 0)
      if (n >= expected || Date.now() > deadline) return n
      await new Promise((r) => setTimeout(r, 250))
    }
  } finally {
    await queue.close()
    connection.disconnect()
  }
}

export async function connectionsScenario(o: ConnectionsOptions): Promise<{ rows: Row[]; details: unknown }> {
  const count = o.quick ? 2000 : 10_000
  const localAddresses = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']
  const starters: [string, () => Promise<Target | undefined>][] = [
    ['plain-aedes', () => startPlainAedes(join(o.work, 'plain-aedes.mjs'))],
    ['mqfn', () => startMqfn({ root: o.root, redisUrl: o.redisUrl, prefix: o.prefix })],
    ['mosquitto', () => startMosquitto(o.dir)],
  ]
  const connectSec: Record<string, number[]> = {}
  const rss: Record<string, number[]> = {}
  const rssIdle: Record<string, number[]> = {}
  const connected: Record<string, number[]> = {}
  const events: Record<string, number[]> = {}
  for (const [name, start] of starters) {
    const target = await start()
    if (!target) continue
    const tag = `conn-${name}`
    try {
      await o.redis.flushall()
      const before = rssMb(target.pid)
      const load = startLoad(o.loadScript, [{ role: 'idle', port: target.port, count, localAddresses, parallel: 200, tag }])
      try {
        const [r] = await load.results
        if (!r || r.role !== 'idle') throw new Error('no idle result')
        // let the broker settle (capture flushes, GC) before reading its memory
        await new Promise((res) => setTimeout(res, 2000))
        const after = rssMb(target.pid)
        ;(connectSec[name] ??= []).push((r.endAt - r.startAt) / 1000)
        ;(rss[name] ??= []).push(after)
        ;(rssIdle[name] ??= []).push(before)
        ;(connected[name] ??= []).push(r.connected)
        let captured: number | undefined
        if (name === 'mqfn') {
          captured = await capturedConnects(o, tag, r.connected)
          ;(events[name] ??= []).push(captured)
        }
        o.log(`connections ${name}: ${r.connected}/${count} in ${((r.endAt - r.startAt) / 1000).toFixed(2)} s (${r.failed} failed), RSS ${before.toFixed(0)} → ${after.toFixed(0)} MB${captured === undefined ? '' : `, clientConnected captured: ${captured}`}`)
      } finally {
        load.stop()
      }
    } finally {
      await target.stop()
    }
  }
  const label = `4. ${count.toLocaleString('en-US')} idle clients`
  const m = (x: Record<string, number[]>) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, summarize(v)]))
  return {
    rows: [
      { scenario: label, metric: 'connected', unit: 'clients', better: 'higher', values: m(connected) },
      { scenario: label, metric: 'time to connect all', unit: 's', better: 'lower', values: m(connectSec) },
      { scenario: label, metric: 'broker RSS before', unit: 'MB', better: 'lower', values: m(rssIdle) },
      { scenario: label, metric: 'broker RSS connected', unit: 'MB', better: 'lower', values: m(rss) },
      { scenario: label, metric: 'clientConnected events in Redis', unit: 'events', better: 'higher', values: m(events) },
    ],
    details: { count, localAddresses, parallel: 200 },
  }
}

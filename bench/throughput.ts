import type { QoS } from 'mqtt-packet'
import type { LoadResult } from './load.ts'
import { runLoad } from './run-load.ts'
import { cpuMs, type Target } from './targets.ts'

export interface ThroughputRun {
  /** Messages/s the publishers got out (QoS 0: written; QoS 1: acknowledged). */
  publishRate: number
  /** Messages/s that reached the subscriber, from the first publish to the last delivery. */
  deliveredRate: number
  sent: number
  delivered: number
  /** CPU the broker process used during the run, per 1000 messages sent (ms). */
  brokerCpuPer1k: number
  /** The same for the broker's main thread alone (MQFN_CAPTURE_THREAD moves capture's writing off it). */
  mainCpuPer1k: number
  /** The same for Redis (our broker only; 0 for the others). */
  redisCpuPer1k: number
}

export interface ThroughputSizes {
  connections: number
  perConnection: number
  payloadBytes: number
  window: number
}

function pick<R extends LoadResult['role']>(results: LoadResult[], role: R): Extract<LoadResult, { role: R }> {
  const r = results.find((x) => x.role === role)
  if (!r) throw new Error(`no ${role} result`)
  return r as Extract<LoadResult, { role: R }>
}

/** Scenario 1: N publishers → 1 subscriber, fixed message count. */
export async function throughputRun(script: string, target: Target, qos: QoS, sizes: ThroughputSizes, tag: string, redisPid?: number, subscriberClean = true): Promise<ThroughputRun> {
  const total = sizes.connections * sizes.perConnection
  const cpu0 = cpuMs(target.pid)
  const main0 = cpuMs(target.pid, true)
  const redis0 = redisPid === undefined ? 0 : cpuMs(redisPid)
  const results = await runLoad(script, [
    { role: 'sub', port: target.port, qos, filter: `bench/${tag}/#`, expected: total, idleTimeoutMs: 3000, tag, clean: subscriberClean },
    { role: 'pub', port: target.port, connections: sizes.connections, perConnection: sizes.perConnection, qos, payloadBytes: sizes.payloadBytes, topic: `bench/${tag}/t`, window: sizes.window, tag },
  ], 300_000)
  const pub = pick(results, 'pub')
  const sub = pick(results, 'sub')
  return {
    publishRate: pub.sent / ((pub.endAt - pub.startAt) / 1000),
    deliveredRate: sub.received / ((sub.lastAt - pub.startAt) / 1000),
    sent: pub.sent,
    delivered: sub.received,
    brokerCpuPer1k: (cpuMs(target.pid) - cpu0) / (total / 1000),
    mainCpuPer1k: (cpuMs(target.pid, true) - main0) / (total / 1000),
    redisCpuPer1k: redisPid === undefined ? 0 : (cpuMs(redisPid) - redis0) / (total / 1000),
  }
}

export interface PingPongRun {
  p50: number
  p99: number
  mean: number
}

/** Scenario 2: one QoS 1 client publishing to itself, one message in flight. */
export async function pingPongRun(script: string, target: Target, count: number, warmup: number, tag: string): Promise<PingPongRun> {
  const [r] = await runLoad(script, [{ role: 'pingpong', port: target.port, count, warmup, tag }], 300_000)
  if (!r || r.role !== 'pingpong') throw new Error('no ping-pong result')
  return { p50: r.p50, p99: r.p99, mean: r.mean }
}

import type { QoS } from 'mqtt-packet'
import { RawClient } from './raw-client.ts'
import { nowMs, percentile } from './stats.ts'

/*
 * One load-generator process, forked by main.ts with its job as JSON in argv[2].
 * It connects, reports `ready`, waits for `go` (so every process starts together),
 * runs, reports `result` and exits. Timestamps are wall-clock ms (nowMs) so the
 * parent can combine the publishers' and the subscriber's.
 */

export type LoadJob =
  | { role: 'pub'; port: number; connections: number; perConnection: number; qos: QoS; payloadBytes: number; topic: string; window: number; tag: string }
  | { role: 'sub'; port: number; qos: QoS; filter: string; expected: number; idleTimeoutMs: number; tag: string; clean?: boolean }
  | { role: 'pingpong'; port: number; count: number; warmup: number; tag: string }
  | { role: 'rate'; port: number; qos: QoS; ratePerSec: number; count: number; topic: string; tag: string }
  | { role: 'idle'; port: number; count: number; localAddresses: string[]; parallel: number; tag: string }
  | { role: 'fleet'; port: number; first: number; devices: number; ratePerDevice: number; durationMs: number; localAddresses: string[]; tag: string }

export type LoadResult =
  | { role: 'pub'; sent: number; startAt: number; endAt: number }
  | { role: 'sub'; received: number; firstAt: number; lastAt: number }
  | { role: 'pingpong'; count: number; p50: number; p99: number; mean: number }
  | { role: 'rate'; sent: number; startAt: number; endAt: number }
  | { role: 'idle'; connected: number; failed: number; startAt: number; endAt: number }
  | { role: 'fleet'; connected: number; sent: number; acked: number; startAt: number; endAt: number }

export type ToChild = { type: 'go' } | { type: 'stop' }
export type FromChild = { type: 'ready' } | { type: 'result'; result: LoadResult } | { type: 'error'; message: string }

function send(msg: FromChild): void {
  process.send?.(msg)
}

function nextMessage(type: ToChild['type']): Promise<void> {
  return new Promise((resolve) => {
    const on = (msg: ToChild) => {
      if (msg.type !== type) return
      process.off('message', on)
      resolve()
    }
    process.on('message', on)
  })
}

async function publisher(job: Extract<LoadJob, { role: 'pub' }>): Promise<LoadResult> {
  const clients = await Promise.all(
    Array.from({ length: job.connections }, (_, i) => RawClient.open({ port: job.port, clientId: `${job.tag}-pub-${i}` })),
  )
  const payload = Buffer.alloc(job.payloadBytes, 0x61)
  send({ type: 'ready' })
  await nextMessage('go')
  const startAt = nowMs()
  await Promise.all(clients.map((c) => (job.qos === 0 ? flood(c) : windowed(c))))
  const endAt = nowMs()
  await Promise.all(clients.map((c) => c.end()))
  return { role: 'pub', sent: job.connections * job.perConnection, startAt, endAt }

  // QoS 0: as fast as the socket takes it; done when the last byte left for the kernel
  async function flood(c: RawClient): Promise<void> {
    for (let i = 0; i < job.perConnection; i++) {
      if (!c.publish(job.topic, payload, 0).ok) await c.drained()
    }
    await new Promise<void>((resolve) => c.socket.write(Buffer.alloc(0), () => resolve()))
  }

  // QoS 1: at most `window` unacknowledged; done when the last PUBACK arrived
  function windowed(c: RawClient): Promise<void> {
    return new Promise((resolve) => {
      let sent = 0
      let acked = 0
      const pump = () => {
        while (sent < job.perConnection && sent - acked < job.window) {
          c.publish(job.topic, payload, job.qos)
          sent++
        }
      }
      c.onPuback = () => {
        acked++
        if (acked === job.perConnection) resolve()
        else pump()
      }
      pump()
    })
  }
}

async function subscriber(job: Extract<LoadJob, { role: 'sub' }>): Promise<LoadResult> {
  const c = await RawClient.open({ port: job.port, clientId: `${job.tag}-sub`, clean: job.clean ?? true })
  await c.subscribe(job.filter, job.qos)
  let received = 0
  let firstAt = 0
  let lastAt = 0
  let finish: () => void = () => {}
  const done = new Promise<void>((resolve) => (finish = resolve))
  let idle: NodeJS.Timeout | undefined
  const arm = () => {
    clearTimeout(idle)
    idle = setTimeout(finish, job.idleTimeoutMs)
  }
  c.onPublish = () => {
    const t = nowMs()
    if (received === 0) firstAt = t
    lastAt = t
    received++
    if (received >= job.expected) finish()
    else if ((received & 1023) === 0) arm()
  }
  send({ type: 'ready' })
  await nextMessage('go')
  // the first message may take a while (publishers connect first): allow more time
  idle = setTimeout(finish, job.idleTimeoutMs * 4)
  await done
  clearTimeout(idle)
  await c.end()
  return { role: 'sub', received, firstAt, lastAt }
}

async function pingpong(job: Extract<LoadJob, { role: 'pingpong' }>): Promise<LoadResult> {
  const c = await RawClient.open({ port: job.port, clientId: `${job.tag}-pp` })
  const topic = `bench/${job.tag}/pp`
  await c.subscribe(topic, 1)
  const payload = Buffer.alloc(64, 0x62)
  send({ type: 'ready' })
  await nextMessage('go')
  const samples: number[] = []
  for (let i = 0; i < job.warmup + job.count; i++) {
    const t0 = nowMs()
    await new Promise<void>((resolve) => {
      c.onPublish = () => resolve()
      c.publish(topic, payload, 1)
    })
    if (i >= job.warmup) samples.push(nowMs() - t0)
  }
  await c.end()
  const sorted = samples.sort((a, b) => a - b)
  return { role: 'pingpong', count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean: sorted.reduce((a, b) => a + b, 0) / sorted.length }
}

// Fixed-rate publishing for the pipeline latency: each payload carries its send time.
async function rate(job: Extract<LoadJob, { role: 'rate' }>): Promise<LoadResult> {
  const c = await RawClient.open({ port: job.port, clientId: `${job.tag}-rate` })
  send({ type: 'ready' })
  await nextMessage('go')
  const startAt = nowMs()
  const interval = 1000 / job.ratePerSec
  let sent = 0
  let acked = 0
  c.onPuback = () => void acked++
  await new Promise<void>((resolve) => {
    const tick = () => {
      // catch up on the schedule: timers fire late under load, the rate must not drop
      const due = Math.min(job.count, Math.floor((nowMs() - startAt) / interval) + 1)
      while (sent < due) {
        c.publish(job.topic, Buffer.from(JSON.stringify({ sentAt: nowMs(), n: sent })), job.qos)
        sent++
      }
      if (sent >= job.count) resolve()
      else setTimeout(tick, Math.max(0, startAt + sent * interval - nowMs()))
    }
    tick()
  })
  const endAt = nowMs()
  // QoS 1: leave only once the broker acknowledged (captured) every message
  if (job.qos > 0) {
    await new Promise<void>((resolve) => {
      if (acked >= sent) return resolve()
      c.onPuback = () => {
        if (++acked >= sent) resolve()
      }
    })
  }
  await c.end()
  return { role: 'rate', sent, startAt, endAt }
}

// Many idle connections: opened `parallel` at a time, spread over source addresses
// (one source address has ~28k ephemeral ports). Held until the parent says stop.
async function idle(job: Extract<LoadJob, { role: 'idle' }>): Promise<LoadResult> {
  send({ type: 'ready' })
  await nextMessage('go')
  const clients: RawClient[] = []
  let failed = 0
  let next = 0
  const startAt = nowMs()
  const lane = async () => {
    while (next < job.count) {
      const i = next++
      try {
        clients.push(await RawClient.open({ port: job.port, clientId: `${job.tag}-idle-${i}`, localAddress: job.localAddresses[i % job.localAddresses.length] as string, keepalive: 0 }))
      } catch {
        failed++
      }
    }
  }
  await Promise.all(Array.from({ length: job.parallel }, lane))
  const endAt = nowMs()
  send({ type: 'result', result: { role: 'idle', connected: clients.length, failed, startAt, endAt } })
  await nextMessage('stop')
  for (const c of clients) c.socket.destroy()
  process.exit(0)
}

// Devices of a fleet: each publishes a sensor reading at its own steady rate (QoS 1), phases
// spread over the interval so the broker sees a flat rate, not bursts at each tick.
async function fleet(job: Extract<LoadJob, { role: 'fleet' }>): Promise<LoadResult> {
  const clients: RawClient[] = []
  for (let i = 0; i < job.devices; i += 100) {
    const ids = Array.from({ length: Math.min(100, job.devices - i) }, (_, k) => job.first + i + k)
    clients.push(...(await Promise.all(ids.map((n) => RawClient.open({ port: job.port, clientId: `${job.tag}-${n}`, localAddress: job.localAddresses[n % job.localAddresses.length] as string })))))
  }
  let sent = 0
  let acked = 0
  for (const c of clients) c.onPuback = () => void acked++
  send({ type: 'ready' })
  await nextMessage('go')
  const startAt = nowMs()
  const interval = 1000 / job.ratePerDevice
  const perDevice = Math.floor(job.durationMs / interval)
  await new Promise<void>((resolve) => {
    let done = 0
    clients.forEach((c, i) => {
      const n = job.first + i
      let mine = 0
      const tick = () => {
        c.publish(`sensors/${job.tag}-${n % 50}/d${n}`, Buffer.from(String(20 + (mine % 10))), 1)
        sent++
        if (++mine >= perDevice) {
          if (++done === clients.length) resolve()
          return
        }
        setTimeout(tick, Math.max(0, startAt + (i / clients.length + mine) * interval - nowMs()))
      }
      setTimeout(tick, (i / clients.length) * interval)
    })
  })
  const endAt = nowMs()
  const deadline = Date.now() + 60_000
  while (acked < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  await Promise.all(clients.map((c) => c.end()))
  return { role: 'fleet', connected: clients.length, sent, acked, startAt, endAt }
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as LoadJob
  try {
    switch (job.role) {
      case 'pub': send({ type: 'result', result: await publisher(job) }); break
      case 'sub': send({ type: 'result', result: await subscriber(job) }); break
      case 'pingpong': send({ type: 'result', result: await pingpong(job) }); break
      case 'rate': send({ type: 'result', result: await rate(job) }); break
      case 'idle': await idle(job); return
      case 'fleet': send({ type: 'result', result: await fleet(job) }); break
    }
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? err.message : String(err) })
  }
  process.disconnect?.()
  setTimeout(() => process.exit(0), 100).unref()
}

await main()

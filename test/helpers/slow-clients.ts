import { createConnection, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import type { MqfnProcess } from './processes.ts'

/**
 * A raw MQTT client that subscribes and then stops reading its socket, as a phone in a
 * tunnel does: the broker's writes to it fill the kernel buffers and then wait.
 */
export async function stuckSubscriber(port: number, clientId: string, filter: string, opts: { keepalive?: number; protocolVersion?: 4 | 5 } = {}): Promise<Socket> {
  const socket = createConnection(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.on('error', () => {})
  const version = opts.protocolVersion ?? 4
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId, clean: true, keepalive: opts.keepalive ?? 0 }, { protocolVersion: version }))
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }, { protocolVersion: version }))
  // read the CONNACK and SUBACK, then nothing more
  const parser = mqttPacket.parser({ protocolVersion: version })
  await new Promise<void>((resolve) => {
    parser.on('packet', (p) => { if (p.cmd === 'suback') resolve() })
    socket.on('data', (d: Buffer) => parser.parse(d))
  })
  socket.removeAllListeners('data')
  socket.pause()
  return socket
}

/** The admin port an `mqfn broker` process logged ("admin server listening"). */
export function adminPortOf(p: MqfnProcess): number {
  const match = /"adminPort":(\d+)[^\n]*admin server listening/.exec(p.output())
  if (!match) throw new Error(`no admin port in the output:\n${p.output().slice(0, 2000)}`)
  return Number(match[1])
}

/** One sample of a Prometheus counter or gauge from the broker's /metrics, summed over the labels that match. */
export async function metric(port: number, token: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  const text = await res.text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^(\w+)(\{[^}]*\})?\s+(\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const matches = Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))
    if (matches) sum += Number(m[3])
  }
  return sum
}

/** p-th percentile (0–100) of the samples. */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

import { once } from 'node:events'
import { createConnection, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { waitFor } from './stack.ts'

/**
 * A client on a raw socket: writes packets built with mqtt-packet (or any bytes) and
 * parses every packet the broker sends, where a client library would hide the bytes
 * or refuse to send what the spec forbids.
 */
export interface RawClient {
  socket: Socket
  /** Every packet received so far, in order. */
  readonly packets: Packet[]
  send(packet: Packet | Buffer): void
  /** Resolves with the `n`th (1-based) received packet of `cmd`. */
  next(cmd: Packet['cmd'], n?: number, timeoutMs?: number): Promise<Packet>
  /** Resolves when the broker closed the connection. */
  readonly closed: Promise<void>
}

export async function rawClient(t: TestContext, port: number, protocolVersion: 3 | 4 | 5 = 4): Promise<RawClient> {
  const socket = createConnection({ host: '127.0.0.1', port })
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  socket.setNoDelay(true)
  socket.on('error', () => {})
  const parser = mqttPacket.parser({ protocolVersion })
  const packets: Packet[] = []
  parser.on('packet', (p: Packet) => packets.push(p))
  socket.on('data', (d: Buffer) => parser.parse(d))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return {
    socket,
    packets,
    closed,
    send(packet) {
      socket.write(Buffer.isBuffer(packet) ? packet : mqttPacket.generate(packet, { protocolVersion }))
    },
    next(cmd, n = 1, timeoutMs = 15_000) {
      return waitFor(`${cmd} #${n}`, () => packets.filter((p) => p.cmd === cmd)[n - 1], timeoutMs, 10)
    },
  }
}

/** A CONNECT of `protocolVersion` (4 unless given), clean, keepalive 0. */
export function connectPacket(clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): mqttPacket.IConnectPacket {
  const protocolVersion = extra.protocolVersion ?? 4
  return { cmd: 'connect', protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clientId, clean: true, keepalive: 0, ...extra }
}

import { once } from 'node:events'
import { createConnection, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import type { IClientOptions, MqttClient } from 'mqtt'
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet'
import { connect, waitFor } from './stack.ts'

/*
 * MQTT 5 clients for the conformance tests (test/mqtt5-*.test.ts): MQTT.js at
 * protocol version 5, and a raw socket that sends mqtt-packet bytes and keeps every
 * packet and byte the broker sent, for what a client library would hide or refuse.
 */

export interface RawV5 {
  socket: Socket
  /** Every packet the broker sent, parsed as MQTT 5. */
  packets: Packet[]
  /** Every byte the broker sent. */
  bytes(): Buffer
  send(packet: Packet): void
  /** The next packet of this kind after the `seen` first ones (default: the first). */
  packet<C extends Packet['cmd']>(cmd: C, seen?: number): Promise<Extract<Packet, { cmd: C }>>
  /** Resolves when the broker has closed the connection. */
  closed: Promise<void>
}

export const connectPacket = (clientId: string, extra: Partial<IConnectPacket> = {}): IConnectPacket =>
  ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 0, ...extra })

/** A raw socket that sent `connect` (not waiting for the CONNACK). */
export async function rawV5(t: TestContext, port: number, connectWith: IConnectPacket): Promise<RawV5> {
  const socket = createConnection({ host: '127.0.0.1', port })
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  const packets: Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', (p: Packet) => packets.push(p))
  socket.on('data', (d: Buffer) => {
    chunks.push(d)
    parser.parse(d)
  })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  const send = (p: Packet) => socket.write(mqttPacket.generate(p, { protocolVersion: 5 }))
  send(connectWith)
  return {
    socket,
    packets,
    bytes: () => Buffer.concat(chunks),
    send,
    async packet(cmd, seen = 0) {
      const found = await waitFor(`${cmd} #${seen + 1}`, () => packets.filter((p) => p.cmd === cmd)[seen], 10_000, 20)
      return found as never
    },
    closed,
  }
}

/** A raw v5 session: CONNECT sent and CONNACK 0 received. */
export async function sessionV5(t: TestContext, port: number, clientId: string, extra: Partial<IConnectPacket> = {}): Promise<RawV5> {
  const raw = await rawV5(t, port, connectPacket(clientId, extra))
  const connack = await raw.packet('connack')
  if (connack.reasonCode !== 0) throw new Error(`CONNACK ${connack.reasonCode} for ${clientId}`)
  return raw
}

/** MQTT.js at protocol version 5, connected. */
export function connectV5(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  return connect(port, { protocolVersion: 5, ...opts })
}

export interface Received {
  topic: string
  payload: string
  retain: boolean
  qos: number
  properties: Record<string, unknown> | undefined
}

/** Records every message the client receives, in order. */
export function received(client: MqttClient): Received[] {
  const got: Received[] = []
  client.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos, properties: packet.properties as Record<string, unknown> | undefined }))
  return got
}

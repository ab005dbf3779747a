import assert from 'node:assert/strict'
import { createConnection, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { freePort } from '../scripts/services.ts'
import { mqfn, processStack, ready } from './helpers/processes.ts'
import { connect, sleep, unique, waitFor } from './helpers/stack.ts'

/*
 * Issue 14 item 9: the resend of an unreleased QoS 2 PUBLISH (same client, same packet
 * id, before PUBREL) is the same message [MQTT-4.3.3-2]: one `published` event, one
 * delivery — after a reconnect, through another broker of a cluster (Redis
 * persistence), and when both copies arrive in one TCP chunk.
 */

interface Raw {
  socket: Socket
  write(...packets: Packet[]): void
  next(cmd: string): Promise<Packet>
}

async function raw(t: TestContext, port: number, clientId: string): Promise<Raw> {
  const socket = createConnection(port, '127.0.0.1')
  t.after(() => socket.destroy())
  socket.on('error', () => {})
  const parser = mqttPacket.parser()
  const got: Packet[] = []
  const waiters: (() => void)[] = []
  parser.on('packet', (p) => { got.push(p); waiters.splice(0).forEach((w) => w()) })
  socket.on('data', (d: Buffer) => parser.parse(d))
  const r: Raw = {
    socket,
    write: (...packets) => socket.write(Buffer.concat(packets.map((p) => mqttPacket.generate(p)))),
    next: (cmd) => waitFor(`a ${cmd}`, () => {
      const i = got.findIndex((p) => p.cmd === cmd)
      return i < 0 ? undefined : got.splice(i, 1)[0]
    }, 15_000, 20),
  }
  r.write({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: false, keepalive: 0 })
  const connack = (await r.next('connack')) as mqttPacket.IConnackPacket
  assert.equal(connack.returnCode, 0)
  return r
}

const publish = (topic: string, messageId: number, payload: string, dup = false): Packet =>
  ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 2, dup, retain: false, messageId })

test('a QoS 2 resend before PUBREL is one event and one delivery: in one TCP chunk, after a reconnect, and through another broker', async (t) => {
  const stack = await processStack(t, {})
  const worker = mqfn(t, 'worker', stack.workerEnv())
  const ports = [await freePort(), await freePort()]
  const brokers = ports.map((port, i) => mqfn(t, 'broker', stack.brokerEnv({ MQFN_MQTT_PORT: String(port), MQFN_BROKER_ID: unique(`q2b${i}`), MQFN_PERSISTENCE: 'redis' })))
  await Promise.all([ready(worker, 'worker ready', 90_000), ...brokers.map((b) => ready(b, 'broker ready', 90_000))])
  const [portA, portB] = ports as [number, number]

  const subscriber = await connect(portA, { clientId: unique('q2sub') })
  const delivered: string[] = []
  subscriber.on('message', (_topic, payload) => delivered.push(payload.toString()))
  await subscriber.subscribeAsync('q2/#', { qos: 2 })
  const events = stack.db.collection<{ type: string; topic: string; payload: { buffer: Uint8Array }; dup: boolean }>('events')
  const logged = async (payload: string) =>
    (await events.find({ type: 'published', topic: { $regex: '^q2/' } }).toArray()).filter((e) => Buffer.from(e.payload.buffer).toString() === payload)

  // 1. the original and its DUP copy in one TCP chunk
  const a = await raw(t, portA, unique('q2pubA'))
  a.write(publish('q2/chunk', 7, 'chunk'), publish('q2/chunk', 7, 'chunk', true))
  await a.next('pubrec')
  await a.next('pubrec')
  a.write({ cmd: 'pubrel', messageId: 7 })
  await a.next('pubcomp')

  // PUBREC lost with the connection; the client connects again (to `second`) and resends
  const resendAfterReconnect = async (second: number, topic: string, messageId: number) => {
    const clientId = unique('q2pub')
    const first = await raw(t, portA, clientId)
    first.write(publish(topic, messageId, topic.slice(3)))
    await first.next('pubrec')
    first.socket.destroy()
    const again = await raw(t, second, clientId)
    again.write(publish(topic, messageId, topic.slice(3), true))
    await again.next('pubrec')
    again.write({ cmd: 'pubrel', messageId })
    await again.next('pubcomp')
    return again
  }
  // 2. to the same broker
  await resendAfterReconnect(portA, 'q2/reconnect', 9)
  // 3. to another broker of the cluster, which shares the session store
  const c2 = await resendAfterReconnect(portB, 'q2/cluster', 11)

  // after PUBREL the packet id is free: the same id is a new message again
  c2.write(publish('q2/cluster', 11, 'after-release'))
  await c2.next('pubrec')
  c2.write({ cmd: 'pubrel', messageId: 11 })
  await c2.next('pubcomp')

  await waitFor('the four messages delivered', () => delivered.length >= 4, 15_000).catch((err: Error) => { throw new Error(`${err.message}: got ${JSON.stringify(delivered)}`) })
  await waitFor('the four events logged', async () => (await events.countDocuments({ type: 'published', topic: { $regex: '^q2/' } })) >= 4, 30_000, 250)
  await sleep(1500)
  assert.deepEqual(delivered.sort(), ['after-release', 'chunk', 'cluster', 'reconnect'], 'each message delivered once')
  for (const payload of ['chunk', 'reconnect', 'cluster', 'after-release']) {
    const found = await logged(payload)
    assert.equal(found.length, 1, `one published event for "${payload}", got ${found.length}`)
    assert.equal(found[0]?.dup, false, `the event is the original's, not the resend's ("${payload}")`)
  }
})

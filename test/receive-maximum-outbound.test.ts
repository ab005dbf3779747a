import assert from 'node:assert/strict'
import { createConnection } from 'node:net'
import { test } from 'node:test'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { connect, sleep, startStack, waitFor } from './helpers/stack.ts'

/*
 * MQTT 5 flow control, broker to client: the client's Receive Maximum caps the QoS 1/2
 * PUBLISH packets the broker has unacknowledged towards it [MQTT-3.3.4-7/8/9]; the next
 * goes out once a PUBACK frees a slot. The broker's own bound (maxInflightPerClient)
 * caps every client the same way, MQTT 3.1.1 included.
 */

async function subscriber(port: number, clientId: string, receiveMaximum: number | undefined, version: 4 | 5) {
  const socket = createConnection(port, '127.0.0.1')
  socket.on('error', () => {})
  const parser = mqttPacket.parser({ protocolVersion: version })
  const publishes: mqttPacket.IPublishPacket[] = []
  let subacked = false
  parser.on('packet', (p: Packet) => {
    if (p.cmd === 'publish') publishes.push(p)
    if (p.cmd === 'suback') subacked = true
  })
  socket.on('data', (d: Buffer) => parser.parse(d))
  const send = (p: Packet) => socket.write(mqttPacket.generate(p, { protocolVersion: version }))
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId, clean: true, keepalive: 0, ...(receiveMaximum ? { properties: { receiveMaximum } } : {}) })
  send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rm/#', qos: 1 }] })
  await waitFor('the SUBACK', () => subacked, 10_000)
  return { socket, publishes, ack: (messageId: number) => send({ cmd: 'puback', messageId }) }
}

test('a client\'s Receive Maximum and maxInflightPerClient cap the QoS 1 messages in flight to it; each PUBACK lets the next one go [MQTT-3.3.4-9]', async (t) => {
  const stack = await startStack(t, { functions: {}, broker: { maxInflightPerClient: 5 } })
  const v5 = await subscriber(stack.mqttPort, 'rm-v5', 3, 5)
  const v4 = await subscriber(stack.mqttPort, 'rm-v4', undefined, 4)
  t.after(() => { v5.socket.destroy(); v4.socket.destroy() })

  const publisher = await connect(stack.mqttPort, { clientId: 'rm-pub' })
  for (let i = 0; i < 10; i++) await publisher.publishAsync('rm/x', String(i), { qos: 1 })
  await waitFor('the first windows', () => v5.publishes.length >= 3 && v4.publishes.length >= 5, 10_000)
  await sleep(500)
  assert.equal(v5.publishes.length, 3, 'Receive Maximum 3: three in flight, no more')
  assert.equal(v4.publishes.length, 5, 'maxInflightPerClient 5 for a 3.1.1 client')

  // one PUBACK, one more; the rest follow their acknowledgements, in order
  v5.ack(v5.publishes[0]?.messageId as number)
  await waitFor('the fourth', () => v5.publishes.length === 4, 10_000)
  await sleep(300)
  assert.equal(v5.publishes.length, 4)
  for (let i = 1; i <= 6; i++) {
    v5.ack(v5.publishes[i]?.messageId as number)
    await waitFor(`message ${i + 4}`, () => v5.publishes.length === i + 4, 10_000)
  }
  assert.deepEqual(v5.publishes.map((p) => p.payload.toString()), Array.from({ length: 10 }, (_, i) => String(i)), 'all ten, in order, once')
})

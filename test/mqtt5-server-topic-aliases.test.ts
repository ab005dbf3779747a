import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import { connectV5, sessionV5, type RawV5 } from './helpers/mqtt5.ts'
import { connectPacket as connectPacket311, rawClient } from './helpers/raw-mqtt.ts'
import { startStack, waitFor } from './helpers/stack.ts'

/*
 * Topic aliases broker to client (aedes patch 007+server-topic-aliases): a client
 * whose CONNECT allows n aliases gets its first n topics aliased, the topic and the
 * alias once, then an empty topic and the alias [MQTT-3.3.2-10..12]. Raw mqtt-packet
 * subscribers see the bytes; MQTT.js v5 shows that a real client resolves them.
 */

const TOPICS = ['ta/a', 'ta/a', 'ta/b', 'ta/c', 'ta/a', 'ta/c']

async function subscriber(t: TestContext, port: number, clientId: string, topicAliasMaximum?: number): Promise<RawV5> {
  const raw = await sessionV5(t, port, clientId, topicAliasMaximum === undefined ? {} : { properties: { topicAliasMaximum } })
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ta/#', qos: 0 }] })
  await raw.packet('suback')
  return raw
}

const publishes = (raw: RawV5, n: number) =>
  waitFor(`${n} PUBLISH packets`, () => {
    const got = raw.packets.filter((p): p is IPublishPacket => p.cmd === 'publish')
    return got.length >= n && got
  }, 15_000, 20)

const shape = (p: IPublishPacket) => [p.topic, p.properties?.topicAlias, p.payload.toString()]

test('topic aliases broker to client', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const port = stack.mqttPort
  const publisher = await connectV5(port, { clientId: 'ta-pub' })
  const publishAll = async (topics: readonly string[]) => {
    for (const [i, topic] of topics.entries()) await publisher.publishAsync(topic, String(i), { qos: 1 })
  }

  await t.test('[MQTT-3.3.2-10] [MQTT-3.3.2-11] [MQTT-3.3.2-12] Topic Alias Maximum 2: the first two topics aliased (name once, then empty topic and alias), the third by name', async (t) => {
    const raw = await subscriber(t, port, 'ta-raw', 2)
    await publishAll(TOPICS)
    const got = await publishes(raw, TOPICS.length)
    assert.deepEqual(got.map(shape), [
      ['ta/a', 1, '0'],
      ['', 1, '1'],
      ['ta/b', 2, '2'],
      ['ta/c', undefined, '3'],
      ['', 1, '4'],
      ['ta/c', undefined, '5'],
    ])
    // on the wire: topic length 0x0000, then the properties: length 3, Topic Alias (0x23) 0x0001
    const second = got[1] as IPublishPacket & { length: number }
    assert.equal(second.length, 2 + 4 + 1)
    assert.ok(raw.bytes().includes(Buffer.from([0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, 0x31])))
  })

  await t.test('[MQTT-3.3.2-7] aliases belong to the connection: a new one gets the topic name again first', async (t) => {
    const first = await subscriber(t, port, 'ta-again', 4)
    await publishAll(['ta/a', 'ta/a'])
    assert.deepEqual((await publishes(first, 2)).map(shape), [['ta/a', 1, '0'], ['', 1, '1']])
    first.socket.destroy()
    await first.closed
    const second = await subscriber(t, port, 'ta-again', 4)
    await publishAll(['ta/a', 'ta/a'])
    assert.deepEqual((await publishes(second, 2)).map(shape), [['ta/a', 1, '0'], ['', 1, '1']])
  })

  await t.test('[MQTT-3.3.2-10] no Topic Alias Maximum (0) in the CONNECT, or MQTT 3.1.1: full topic names only', async (t) => {
    const none = await subscriber(t, port, 'ta-none')
    const old = await rawClient(t, port, 4)
    old.send(connectPacket311('ta-311'))
    await old.next('connack')
    old.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ta/#', qos: 0 }] })
    await old.next('suback')
    await publishAll(TOPICS)
    assert.deepEqual((await publishes(none, TOPICS.length)).map((p) => [p.topic, p.properties?.topicAlias]), TOPICS.map((topic) => [topic, undefined]))
    const got311 = await waitFor('3.1.1 PUBLISH packets', () => old.packets.filter((p) => p.cmd === 'publish').length >= TOPICS.length && old.packets, 15_000, 20)
    assert.deepEqual(got311.filter((p): p is IPublishPacket => p.cmd === 'publish').map((p) => p.topic), TOPICS)
  })

  await t.test('MQTT.js v5 with topicAliasMaximum 5 receives every message with its own topic', async () => {
    const client = await connectV5(port, { clientId: 'ta-mqttjs', properties: { topicAliasMaximum: 5 } })
    const got: { topic: string; alias: unknown }[] = []
    client.on('message', (topic, _payload, packet) => got.push({ topic, alias: packet.properties?.topicAlias }))
    await client.subscribeAsync('ta/#', { qos: 1 })
    await publishAll(TOPICS)
    await waitFor('every message at MQTT.js', () => got.length === TOPICS.length)
    assert.deepEqual(got.map((g) => g.topic), TOPICS)
    // it was aliased on the wire: MQTT.js reports the alias it resolved
    assert.deepEqual(got.map((g) => g.alias), [1, 1, 2, 3, 1, 3])
  })
})

test('serverTopicAliases false: full topic names, whatever the client allows', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { serverTopicAliases: false } })
  const publisher = await connectV5(stack.mqttPort, { clientId: 'ta-off-pub' })
  const raw = await subscriber(t, stack.mqttPort, 'ta-off', 10)
  for (const topic of TOPICS) await publisher.publishAsync(topic, 'x', { qos: 1 })
  assert.deepEqual((await publishes(raw, TOPICS.length)).map((p) => [p.topic, p.properties?.topicAlias]), TOPICS.map((topic) => [topic, undefined]))
})

test('delivered events name the topic of an aliased PUBLISH, not its empty topic field', async (t) => {
  const stack = await startStack(t, { functions: {}, broker: { captureDelivered: 'always' } })
  const sub = await connectV5(stack.mqttPort, { clientId: 'ta-dlv', properties: { topicAliasMaximum: 2 } })
  await sub.subscribeAsync('ta/#', { qos: 1 })
  const publisher = await connectV5(stack.mqttPort, { clientId: 'ta-dlv-pub' })
  for (const topic of TOPICS) await publisher.publishAsync(topic, 'x', { qos: 1 })
  const delivered = await waitFor('a delivered event per message', async () => {
    const docs = await stack.db.collection('events').find({ type: 'delivered', clientId: 'ta-dlv' }).sort({ seq: 1 }).toArray()
    return docs.length >= TOPICS.length && docs
  }, 30_000, 200)
  assert.deepEqual(delivered.map((d) => d.topic), TOPICS)
})

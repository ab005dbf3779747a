import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { MqttClient } from 'mqtt'
import { createBroker } from '../broker/broker.ts'
import { createLogger } from '../common/logger.ts'
import { connect, sleep, startStack, unique, waitFor } from './helpers/stack.ts'
import { connectV5, received, sessionV5, type Received } from './helpers/mqtt5.ts'

/*
 * Shared subscriptions `$share/{ShareName}/{filter}` (MQTT 5.0 §4.8.2): each message
 * goes to one member of each group, in turn on one broker, and once per group across
 * the brokers of a cluster (MQFN_PERSISTENCE=redis: a Redis claim per message,
 * broker/mqtt5/shared-claim.ts).
 */

const publishAll = async (publisher: MqttClient, topic: string, count: number, tag: string) => {
  for (let i = 0; i < count; i++) await publisher.publishAsync(topic, `${tag}${i}`, { qos: 1 })
}

const payloads = (lists: Received[][]) => lists.flatMap((got) => got.map((m) => m.payload))

test('shared subscriptions on one broker', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const port = stack.mqttPort
  const publisher = await connectV5(port, { clientId: 'sh-publisher' })

  await t.test('§4.8.2 the CONNACK does not say shared subscriptions are unavailable (absent: available)', async (t) => {
    const raw = await sessionV5(t, port, 'sh-connack')
    assert.equal((await raw.packet('connack')).properties?.sharedSubscriptionAvailable, undefined)
  })

  await t.test('§4.8.2 one member of each group gets each message, in turn; a plain subscription gets all', async () => {
    const members = await Promise.all(['a', 'b', 'c'].map((n) => connectV5(port, { clientId: `sh-g1-${n}` })))
    // a 3.1.1 client may join a group too, as with Mosquitto
    members.push(await connect(port, { clientId: 'sh-g1-v4', protocolVersion: 4 }))
    const other = await connectV5(port, { clientId: 'sh-g2' })
    const plain = await connectV5(port, { clientId: 'sh-plain' })
    const got = members.map(received)
    const gotOther = received(other)
    const gotPlain = received(plain)
    for (const m of members) await m.subscribeAsync('$share/g1/sh/t/#', { qos: 1 })
    await other.subscribeAsync('$share/g2/sh/t/+', { qos: 1 })
    await plain.subscribeAsync('sh/t/+', { qos: 1 })
    await publishAll(publisher, 'sh/t/x', 40, 'm')
    await waitFor('every message to each group and to the plain subscriber', () => payloads(got).length === 40 && gotOther.length === 40 && gotPlain.length === 40)
    await sleep(300)
    const all = payloads(got)
    assert.equal(all.length, 40)
    assert.equal(new Set(all).size, 40, 'no message twice within the group')
    assert.deepEqual(got.map((g) => g.length), [10, 10, 10, 10], 'round-robin among the four members')
    assert.ok(got.flat().every((m) => m.qos === 1 && m.topic === 'sh/t/x'))
  })

  await t.test('§4.8.2 a member that leaves (UNSUBSCRIBE, disconnect) gets no more; the others share its part', async () => {
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => connectV5(port, { clientId: `sh-leave-${n}` })))
    const got = [a, b, c].map((m) => received(m as MqttClient))
    for (const m of [a, b, c]) await (m as MqttClient).subscribeAsync('$share/leave/sh/leave', { qos: 1 })
    await (a as MqttClient).unsubscribeAsync('$share/leave/sh/leave')
    await new Promise<void>((resolve) => (b as MqttClient).end(false, {}, () => resolve()))
    await publishAll(publisher, 'sh/leave', 6, 'l')
    await waitFor('six to the one member left', () => got[2]?.length === 6)
    assert.deepEqual(got.map((g) => g.length), [0, 0, 6])
  })

  await t.test('§4.8.2 retained messages are not sent when a shared subscription is made', async () => {
    await publisher.publishAsync('sh/retained', 'kept', { qos: 1, retain: true })
    const a = await connectV5(port, { clientId: 'sh-retained' })
    const got = received(a)
    await a.subscribeAsync('$share/r/sh/retained', { qos: 1 })
    await publisher.publishAsync('sh/retained', 'live', { qos: 1 })
    await waitFor('live', () => got.length >= 1)
    await sleep(200)
    assert.deepEqual(got.map((m) => m.payload), ['live'])
  })

  await t.test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] a malformed shared filter is refused with 0x8F; the valid ones in the packet stand', async (t) => {
    const raw = await sessionV5(t, port, 'sh-malformed')
    raw.send({ cmd: 'subscribe', messageId: 3, subscriptions: [
      { topic: '$share/g+/a', qos: 1 }, { topic: '$share/g', qos: 1 }, { topic: '$share//a', qos: 1 }, { topic: '$share/ok/a', qos: 1 },
    ] })
    const suback = await raw.packet('suback')
    assert.deepEqual(suback.granted, [0x8f, 0x8f, 0x8f, 1])
  })

  await t.test('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82', async (t) => {
    const raw = await sessionV5(t, port, 'sh-no-local')
    raw.send({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: '$share/g/a', qos: 1, nl: true }] })
    await raw.closed
    assert.deepEqual(raw.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x82])
    assert.equal(raw.packets.filter((p) => p.cmd === 'suback').length, 0)
  })
})

test('§4.8.2 shared subscriptions across a cluster: each message to one member of the group, whichever broker it is on', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { persistence: 'redis' } })
  const second = await createBroker({ ...stack.brokerConfig, brokerId: unique('broker-b'), mqttPort: 0, wsPort: 0, adminPort: 0 }, createLogger('test', 'silent'))
  t.after(() => second.close())
  const portB = second.listeners.find((l) => l.protocol === 'mqtt')?.port as number
  const ports = [stack.mqttPort, portB]

  const members = await Promise.all([0, 1, 0, 1].map((b, i) => connectV5(ports[b] as number, { clientId: `shc-${i}` })))
  const got = members.map(received)
  const watcher = await connectV5(portB, { clientId: 'shc-watcher' })
  const gotWatcher = received(watcher)
  for (const m of members) await m.subscribeAsync('$share/cg/shc/#', { qos: 1 })
  await watcher.subscribeAsync('shc/#', { qos: 1 })
  // the subscriptions reach the other broker through Redis pub/sub
  await sleep(500)
  const pubA = await connectV5(ports[0] as number, { clientId: 'shc-pub-a' })
  const pubB = await connectV5(portB, { clientId: 'shc-pub-b' })
  await Promise.all([publishAll(pubA, 'shc/a', 30, 'a'), publishAll(pubB, 'shc/b', 30, 'b')])
  await waitFor('all 60 to the watcher', () => gotWatcher.length === 60)
  await waitFor('all 60 to the group', () => payloads(got).length >= 60)
  await sleep(500)
  const all = payloads(got)
  assert.equal(all.length, 60, `delivered ${all.length} times for 60 messages`)
  assert.equal(new Set(all).size, 60, 'no message twice within the group')
  // Which broker's members get a message depends on which claims first (not
  // promised). With members left on A only, messages published on B reach them.
  for (const i of [1, 3]) await members[i]!.unsubscribeAsync('$share/cg/shc/#')
  const before = got[0]!.length + got[2]!.length
  await publishAll(pubB, 'shc/b', 10, 'late')
  await waitFor('ten more to the members on A', () => got[0]!.length + got[2]!.length === before + 10)
  await sleep(300)
  assert.equal(got[0]!.length + got[2]!.length, before + 10)
  assert.equal(got[1]!.length + got[3]!.length, 60 - before)
})

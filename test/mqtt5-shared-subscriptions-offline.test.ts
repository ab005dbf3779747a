import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { createBroker } from '../broker/broker.ts'
import { createLogger } from '../common/logger.ts'
import { connect, sleep, startStack, unique, waitFor } from './helpers/stack.ts'
import { sessionV5 } from './helpers/mqtt5.ts'

/*
 * Shared subscriptions with persistent members offline (MQTT 5.0 §4.8.2, aedes patch
 * 008+shared-offline): a QoS 1/2 message for a group none of whose members is connected
 * is queued in one persistent member's session (MQTT 5 Session Expiry > 0, or 3.1.1
 * clean session 0) and delivered when it reconnects, once per group. [MQTT-4.8.2]
 * "If the Client's Session terminates before the Client reconnects, the Server SHOULD
 * send the Application Message to another Client that is subscribed to the same Shared
 * Subscription": the group loses no message while a session lasts; connected members
 * are preferred, as the Server chooses among the Sessions.
 */

interface Member {
  client: MqttClient
  got: string[]
  sessionPresent: boolean
}

/** A persistent session (v5 Session Expiry 300 s, or 3.1.1 clean 0), recording from its first packet on. */
async function member(t: TestContext, port: number, clientId: string, version: 4 | 5): Promise<Member> {
  const client = mqtt.connect({
    host: '127.0.0.1', port, clientId, clean: false, reconnectPeriod: 0, protocolVersion: version,
    ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
  })
  t.after(() => client.end(true))
  const got: string[] = []
  client.on('message', (_topic, payload) => got.push(payload.toString()))
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => client.once('connect', resolve).once('error', reject))
  return { client, got, sessionPresent: connack.sessionPresent }
}

const publishAll = async (publisher: MqttClient, topic: string, count: number, tag: string, qos: 0 | 1 | 2 = 1) => {
  for (let i = 0; i < count; i++) await publisher.publishAsync(topic, `${tag}${i}`, { qos })
}

/** Waits for `total` messages over the members, then a while longer for any extra. */
async function settle(members: Member[], total: number): Promise<string[]> {
  await waitFor(`${total} messages to the group`, () => members.reduce((n, m) => n + m.got.length, 0) >= total)
  await sleep(500)
  return members.flatMap((m) => m.got)
}

for (const persistence of ['memory', 'redis'] as const) {
  test(`${persistence} persistence: a shared group's persistent members count while offline [MQTT-4.8.2]`, async (t) => {
    const stack = await startStack(t, { functions: {}, noWorker: true, broker: { persistence } })
    const port = stack.mqttPort
    const publisher = await connect(port, { clientId: unique('shoff-pub'), protocolVersion: 5 })

    await t.test('two offline members (v5 and 3.1.1): 10 QoS 1 messages, together exactly 10 at reconnect, each once, in turn', async (t) => {
      const ids = [unique('shoff-a'), unique('shoff-b')]
      const versions = [5, 4] as const
      for (const [i, id] of ids.entries()) {
        const m = await member(t, port, id, versions[i]!)
        await m.client.subscribeAsync('$share/off/shoff/t/+', { qos: 1 })
        await m.client.endAsync()
      }
      await publishAll(publisher, 'shoff/t/x', 10, 'm')
      const back = await Promise.all(ids.map((id, i) => member(t, port, id, versions[i]!)))
      assert.deepEqual(back.map((m) => m.sessionPresent), [true, true])
      const all = await settle(back, 10)
      assert.equal(all.length, 10, `delivered ${all.length} times for 10 messages`)
      assert.equal(new Set(all).size, 10, 'no message twice within the group')
      assert.deepEqual(back.map((m) => m.got.length), [5, 5], 'queued for the persistent members in turn')
      // connected again, they share live messages as before
      await publishAll(publisher, 'shoff/t/y', 4, 'live')
      await settle(back, 14)
      assert.deepEqual(back.map((m) => m.got.filter((p) => p.startsWith('live')).length), [2, 2])
    })

    await t.test('a connected member is preferred: it gets all 10, the offline persistent one none', async (t) => {
      const [on, off] = [unique('shoff-on'), unique('shoff-off')]
      const offline = await member(t, port, off, 5)
      await offline.client.subscribeAsync('$share/pref/shoff/pref', { qos: 1 })
      await offline.client.endAsync()
      const online = await member(t, port, on, 5)
      await online.client.subscribeAsync('$share/pref/shoff/pref', { qos: 1 })
      await publishAll(publisher, 'shoff/pref', 10, 'p')
      const back = await member(t, port, off, 5)
      assert.equal((await settle([online], 10)).length, 10)
      await sleep(300)
      assert.deepEqual([online.got.length, back.got.length], [10, 0])
    })

    await t.test('QoS 0 is not queued; an unsubscribed or clean member is not a member; QoS 2 is queued at the subscription QoS', async (t) => {
      const [kept, left, clean] = [unique('shoff-kept'), unique('shoff-left'), unique('shoff-clean')]
      const k = await member(t, port, kept, 5)
      await k.client.subscribeAsync('$share/mix/shoff/mix', { qos: 1 })
      await k.client.endAsync()
      const l = await member(t, port, left, 4)
      await l.client.subscribeAsync('$share/mix/shoff/mix', { qos: 1 })
      await l.client.unsubscribeAsync('$share/mix/shoff/mix')
      await l.client.endAsync()
      const c = await connect(port, { clientId: clean, protocolVersion: 5 })
      await c.subscribeAsync('$share/mix/shoff/mix', { qos: 1 })
      await c.endAsync()
      await publishAll(publisher, 'shoff/mix', 3, 'zero', 0)
      await publishAll(publisher, 'shoff/mix', 6, 'two', 2)
      const qos: number[] = []
      const back = await member(t, port, kept, 5)
      back.client.on('message', (_topic, _payload, packet) => qos.push(packet.qos))
      const lBack = await member(t, port, left, 4)
      await settle([back], 6)
      assert.deepEqual(back.got, ['two0', 'two1', 'two2', 'two3', 'two4', 'two5'], 'the QoS 2 messages in order, no QoS 0')
      assert.deepEqual(lBack.got, [])
      assert.ok(qos.every((q) => q === 1), `delivered at the subscription's QoS 1: ${qos.join()}`)
    })

    await t.test('[MQTT-4.8.2] a persistent member that drops before its PUBACK gets the message again at reconnect [MQTT-4.4.0-1]', async (t) => {
      const id = unique('shoff-inflight')
      const session = { clean: false, properties: { sessionExpiryInterval: 300 } }
      const first = await sessionV5(t, port, id, session)
      first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/inflight/shoff/inflight', qos: 1 }] })
      await first.packet('suback')
      await publisher.publishAsync('shoff/inflight', 'r0', { qos: 1 })
      assert.equal((await first.packet('publish')).payload.toString(), 'r0')
      first.socket.destroy() // no PUBACK
      await first.closed
      await sleep(200)
      await publisher.publishAsync('shoff/inflight', 'r1', { qos: 1 })
      const again = await sessionV5(t, port, id, session)
      await again.packet('publish', 1)
      await sleep(300)
      const publishes = again.packets.filter((p) => p.cmd === 'publish')
      assert.deepEqual(publishes.map((p) => p.payload.toString()), ['r0', 'r1'])
    })
  })
}

test('memory persistence: the offline share of a group is bounded by maxOfflineMessages', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { maxOfflineMessages: 3 } })
  const id = unique('shoff-bound')
  const m = await member(t, stack.mqttPort, id, 5)
  await m.client.subscribeAsync('$share/bound/shoff/bound', { qos: 1 })
  await m.client.endAsync()
  const publisher = await connect(stack.mqttPort, { clientId: unique('shoff-pub'), protocolVersion: 5 })
  await publishAll(publisher, 'shoff/bound', 5, 'b')
  const back = await member(t, stack.mqttPort, id, 5)
  assert.deepEqual(await settle([back], 3), ['b0', 'b1', 'b2'])
})

test('§4.8.2 across a cluster: queued once for an offline member on another broker, also by a broker started later; a connected member on another broker is preferred', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { persistence: 'redis' } })
  const second = await createBroker({ ...stack.brokerConfig, brokerId: unique('broker-b'), mqttPort: 0, wsPort: 0, adminPort: 0 }, createLogger('test', 'silent'))
  t.after(() => second.close())
  const portB = second.listeners.find((l) => l.protocol === 'mqtt')?.port as number
  const pubA = await connect(stack.mqttPort, { clientId: unique('shoffc-pub'), protocolVersion: 5 })

  const ids = [unique('shoffc-a'), unique('shoffc-b')]
  for (const id of ids) {
    const m = await member(t, portB, id, 5)
    await m.client.subscribeAsync('$share/cl/shoffc/#', { qos: 1 })
    await m.client.endAsync()
  }
  // the group's name reaches broker A through the emitter
  await sleep(500)
  await publishAll(pubA, 'shoffc/x', 10, 'c')
  // a broker started after the members joined knows the group from Redis
  const third = await createBroker({ ...stack.brokerConfig, brokerId: unique('broker-c'), mqttPort: 0, wsPort: 0, adminPort: 0 }, createLogger('test', 'silent'))
  t.after(() => third.close())
  const pubC = await connect(third.listeners.find((l) => l.protocol === 'mqtt')?.port as number, { clientId: unique('shoffc-pub-c'), protocolVersion: 5 })
  await publishAll(pubC, 'shoffc/z', 4, 'z')
  const back = await Promise.all(ids.map((id) => member(t, portB, id, 5)))
  const all = await settle(back, 14)
  assert.equal(all.length, 14, `delivered ${all.length} times for 14 messages`)
  assert.equal(new Set(all).size, 14, 'no message twice within the group')

  // one of them stays connected on B, the other leaves: B's mark keeps A from queueing
  await back[1]!.client.endAsync()
  await sleep(300)
  const before = back[0]!.got.length
  await publishAll(pubA, 'shoffc/y', 10, 'late')
  await waitFor('ten to the connected member on B', () => back[0]!.got.length === before + 10)
  const again = await member(t, portB, ids[1]!, 5)
  await sleep(500)
  assert.equal(back[0]!.got.length, before + 10)
  assert.deepEqual(again.got, [], 'nothing queued for the offline member while one was connected')
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { connect, recorder, sleep, startStack, waitFor, type Stack } from './helpers/stack.ts'
import { connectPacket, rawClient } from './helpers/raw-mqtt.ts'

/*
 * What aedes 1.1.2 / 1.2.0 fixed and 2.0.0-beta.1 lost, restored by
 * patches/aedes+2.0.0-beta.1+001+hardening.patch: one test per behaviour.
 */

const functions = Object.fromEntries(['published', 'clientConnected', 'clientDisconnecting'].map((type) => [`${type}.ts`, recorder(type)]))

interface Call { type: string; event: { clientId: string; topic?: string; payload?: { buffer: Buffer }; reason?: string } }

const calls = (stack: Stack, filter: Record<string, unknown>) => stack.db.collection<Call>('calls').find(filter).toArray()

test('client ids named like Object.prototype members connect and are captured as any other (GHSA-52qw-whmv-87c5)', async (t) => {
  const stack = await startStack(t, { functions })
  for (const id of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    const client = await connect(stack.mqttPort, { clientId: id })
    await client.publishAsync(`ids/${id}`, id, { qos: 1 })
    await client.endAsync()
  }
  // [MQTT-3.1.3-5]: any id of allowed characters is a distinct session
  const published = await waitFor('4 published', async () => {
    const found = await calls(stack, { type: 'published', 'event.topic': /^ids\// })
    return found.length === 4 && found
  })
  assert.deepEqual(published.map((c) => c.event.clientId).sort(), ['__proto__', 'constructor', 'hasOwnProperty', 'toString'])
  // clientConnected travels in its own queue: it may be handled after the published events
  const connected = await waitFor('4 connected', async () => {
    const found = await calls(stack, { type: 'clientConnected' })
    return found.length === 4 && found
  })
  assert.deepEqual(connected.map((c) => c.event.clientId).sort(), ['__proto__', 'constructor', 'hasOwnProperty', 'toString'])
  // none was mistaken for a takeover of an inherited "client"
  const disconnecting = await waitFor('4 disconnecting', async () => {
    const found = await calls(stack, { type: 'clientDisconnecting' })
    return found.length === 4 && found
  })
  assert.deepEqual(disconnecting.map((c) => c.event.reason), ['disconnect', 'disconnect', 'disconnect', 'disconnect'])
})

test('a QoS 2 PUBLISH resent before PUBREL is captured once [MQTT-4.3.3-2]; past maxInflightInbound unreleased ones the connection ends', async (t) => {
  const stack = await startStack(t, { functions })
  const raw = await rawClient(t, stack.mqttPort)
  raw.send(connectPacket('qos2-window'))
  await raw.next('connack')
  const publish = (messageId: number, dup = false) => ({ cmd: 'publish' as const, topic: 'window/x', payload: Buffer.from(String(messageId)), qos: 2 as const, retain: false, dup, messageId })
  raw.send(publish(1))
  await raw.next('pubrec', 1)
  raw.send(publish(1, true))
  await raw.next('pubrec', 2)
  raw.send({ cmd: 'pubrel', messageId: 1 })
  await raw.next('pubcomp', 1)
  await waitFor('published 1', async () => (await calls(stack, { type: 'published', 'event.topic': 'window/x' })).length === 1)

  // 1000 (aedes' default bound) held without PUBREL are accepted, the 1001st is not
  for (let id = 2; id <= 1001; id++) raw.send(publish(id))
  await raw.next('pubrec', 1002, 30_000)
  raw.send(publish(1002))
  await raw.closed
  const [ended] = await waitFor('clientDisconnecting', () => calls(stack, { type: 'clientDisconnecting', 'event.clientId': 'qos2-window' }).then((c) => c.length > 0 && c))
  assert.equal(ended?.event.reason, 'limit-exceeded')
  assert.equal(raw.packets.filter((p) => p.cmd === 'pubrec').length, 1002)
})

test('a clean session drops the QoS 2 messages its predecessor left unreleased [MQTT-3.1.2-6]', async (t) => {
  const stack = await startStack(t, { functions })
  const first = await rawClient(t, stack.mqttPort)
  first.send(connectPacket('clean-incoming'))
  await first.next('connack')
  first.send({ cmd: 'publish', topic: 'clean/x', payload: Buffer.from('old'), qos: 2, retain: false, dup: false, messageId: 5 })
  await first.next('pubrec')
  first.socket.destroy()

  const watcher = await connect(stack.mqttPort, { clientId: 'clean-watcher' })
  await watcher.subscribeAsync('clean/x', { qos: 2 })
  const got: string[] = []
  watcher.on('message', (_topic, payload) => got.push(payload.toString()))
  got.length = 0

  await sleep(200)
  const second = await rawClient(t, stack.mqttPort)
  second.send(connectPacket('clean-incoming'))
  await second.next('connack')
  // the same message id, new content: a new message for a new session, not a duplicate
  second.send({ cmd: 'publish', topic: 'clean/x', payload: Buffer.from('new'), qos: 2, retain: false, dup: false, messageId: 5 })
  await second.next('pubrec')
  second.send({ cmd: 'pubrel', messageId: 5 })
  await second.next('pubcomp')
  await waitFor('delivery of "new"', () => got.includes('new'))
  const published = await waitFor('published "new"', async () => {
    const found = await calls(stack, { type: 'published', 'event.topic': 'clean/x' })
    return found.length === 2 && found
  })
  assert.deepEqual(published.map((c) => Buffer.from(c.event.payload?.buffer ?? []).toString()).sort(), ['new', 'old'])
})

test('two PUBRELs for one message in one chunk get two PUBCOMPs and nothing escapes as an unhandled rejection', async (t) => {
  const stack = await startStack(t, { functions })
  const rejections: unknown[] = []
  const onRejection = (reason: unknown) => rejections.push(reason)
  process.on('unhandledRejection', onRejection)
  t.after(() => process.off('unhandledRejection', onRejection))
  const raw = await rawClient(t, stack.mqttPort)
  raw.send(connectPacket('double-pubrel'))
  await raw.next('connack')
  raw.send({ cmd: 'publish', topic: 'rel/x', payload: Buffer.from('x'), qos: 2, retain: false, dup: false, messageId: 9 })
  await raw.next('pubrec')
  const pubrel = { cmd: 'pubrel' as const, messageId: 9 }
  raw.send(Buffer.concat([mqttPacket.generate(pubrel), mqttPacket.generate(pubrel)]))
  await raw.next('pubcomp', 2)
  await sleep(200)
  assert.deepEqual(rejections, [])
  // the connection is still served
  raw.send({ cmd: 'pingreq' })
  await raw.next('pingresp')
})

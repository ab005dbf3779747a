import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createConnection } from 'node:net'
import { test } from 'node:test'
import { promisify } from 'node:util'
import mqttPacket from 'mqtt-packet'
import { EVENT_TYPES } from '../common/event-types.ts'
import { connect, recorder, sleep, startStack, waitFor, type Stack } from './helpers/stack.ts'

const run = promisify(execFile)
const functions = Object.fromEntries(EVENT_TYPES.map((type) => [`${type}.ts`, recorder(type)]))

interface Call {
  type: string
  handler: string
  event: Record<string, unknown> & { seq: number; epoch: number; clientId: string | null }
}

async function callsOf(stack: Stack, clientId: string, count: number): Promise<Call[]> {
  let seen: string[] = []
  try {
    return await waitFor(`${count} events of ${clientId}`, async () => {
      const calls = await stack.db.collection<Call>('calls').find({ 'event.clientId': clientId }).sort({ 'event.seq': 1 }).toArray()
      seen = calls.map((c) => c.type)
      return calls.length >= count ? calls : undefined
    })
  } catch (err) {
    throw new Error(`${(err as Error).message}; got ${seen.join(', ') || 'none'}`)
  }
}

function rawSocket(port: number): Promise<ReturnType<typeof createConnection>> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ port, host: '127.0.0.1' }, () => resolve(s))
    s.on('error', reject)
  })
}

test('an MQTT.js session produces every client event, in seq order, with its fields', async (t) => {
  // `always`: the broker starts before the worker whose delivered handler would switch `auto` on
  const stack = await startStack(t, { functions, broker: { captureDelivered: 'always' } })
  const client = await connect(stack.mqttPort, { clientId: 'ev-a', keepalive: 30, clean: true })
  await client.subscribeAsync('room/#', { qos: 1 })
  const received = new Promise<Buffer>((resolve) => client.once('message', (_t, payload) => resolve(payload)))
  await client.publishAsync('room/1', 'hello', { qos: 1 })
  assert.equal((await received).toString(), 'hello')
  await sleep(200) // let the client's PUBACK for the delivered copy arrive first
  await client.unsubscribeAsync('room/#')
  await client.endAsync()

  const calls = await callsOf(stack, 'ev-a', 7)
  assert.deepEqual(calls.map((c) => c.type), [
    'clientConnected', 'subscribed', 'published', 'delivered', 'unsubscribed', 'clientDisconnecting', 'clientDisconnected',
  ])
  assert.deepEqual(calls.map((c) => c.event.seq), [1, 2, 3, 4, 5, 6, 7])
  assert.equal(new Set(calls.map((c) => c.event.epoch)).size, 1, 'one connection, one epoch')
  for (const c of calls) {
    assert.equal(c.handler, c.type)
    assert.equal(c.event.brokerId, stack.broker.id)
    assert.equal(c.event.remoteAddress, '127.0.0.1')
  }
  const [connected, subscribed, published, delivered, unsubscribed, disconnecting, disconnected] = calls.map((c) => c.event)
  assert.equal(connected?.clean, true)
  assert.equal(connected?.keepalive, 30)
  assert.equal(connected?.protocolVersion, 4)
  assert.deepEqual(subscribed?.subscriptions, [{ topic: 'room/#', qos: 1 }])
  assert.equal(published?.topic, 'room/1')
  assert.equal(Buffer.from((published?.payload as { buffer: Uint8Array }).buffer).toString(), 'hello')
  assert.equal(published?.qos, 1)
  assert.equal(published?.retain, false)
  assert.equal(delivered?.topic, 'room/1')
  assert.equal(delivered?.qos, 1)
  assert.deepEqual(unsubscribed?.topics, ['room/#'])
  assert.equal(disconnecting?.reason, 'disconnect')
  assert.equal(disconnected?.reason, 'disconnect')
})

test('mosquitto_pub and mosquitto_sub, and MQTT over WebSocket, are captured too', async (t) => {
  const stack = await startStack(t, { functions, broker: { captureDelivered: 'always' } })
  const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(stack.mqttPort), '-i', 'ev-sub', '-t', 'cli/#', '-q', '1', '-C', '1'])
  await callsOf(stack, 'ev-sub', 2) // connected + subscribed
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(stack.mqttPort), '-i', 'ev-pub', '-t', 'cli/x', '-m', 'from mosquitto', '-q', '1'])
  await sub
  const pub = await callsOf(stack, 'ev-pub', 4)
  assert.deepEqual(pub.map((c) => c.type), ['clientConnected', 'published', 'clientDisconnecting', 'clientDisconnected'])
  assert.equal(pub[1]?.event.topic, 'cli/x')
  assert.equal(pub[3]?.event.reason, 'disconnect')
  const subCalls = await callsOf(stack, 'ev-sub', 5)
  assert.deepEqual(subCalls.map((c) => c.type), ['clientConnected', 'subscribed', 'delivered', 'clientDisconnecting', 'clientDisconnected'])
  assert.equal(subCalls[2]?.event.topic, 'cli/x')

  const ws = await connect(stack.wsPort, { protocol: 'ws', path: '/mqtt', clientId: 'ev-ws' })
  await ws.publishAsync('over/ws', 'w', { qos: 1 })
  const wsCalls = await callsOf(stack, 'ev-ws', 2)
  assert.equal(wsCalls[1]?.type, 'published')
  assert.equal(wsCalls[1]?.event.topic, 'over/ws')
})

test('a silent client gets keepaliveTimeout, then disconnect events with that reason', async (t) => {
  const stack = await startStack(t, { functions })
  const socket = await rawSocket(stack.mqttPort)
  t.after(() => socket.destroy())
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ev-silent', clean: true, keepalive: 1 }))
  const calls = await callsOf(stack, 'ev-silent', 4)
  assert.deepEqual(calls.map((c) => c.type), ['clientConnected', 'keepaliveTimeout', 'clientDisconnecting', 'clientDisconnected'])
  assert.equal(calls[1]?.event.keepalive, 1)
  assert.equal(calls[2]?.event.reason, 'keepalive-timeout')
  assert.equal(calls[3]?.event.reason, 'keepalive-timeout')
})

test('a forbidden publish is acknowledged, dropped and a clientError; a bad CONNECT is a connectionError', async (t) => {
  const stack = await startStack(t, { functions })
  const client = await connect(stack.mqttPort, { clientId: 'ev-bad' })
  // MQTT 3.1.1 cannot refuse a PUBLISH [MQTT-3.3.5-2]: the PUBACK comes, the connection stays
  await client.publishAsync('$SYS/forged', 'x', { qos: 1 })
  assert.equal(client.connected, true)
  const calls = await callsOf(stack, 'ev-bad', 2)
  assert.deepEqual(calls.map((c) => c.type), ['clientConnected', 'clientError'])
  assert.equal(calls[1]?.event.reason, 'not-authorized')
  assert.equal(calls[1]?.event.topic, '$SYS/forged')
  assert.equal((calls[1]?.event.error as { message: string }).message, 'not authorized: publish to "$SYS/forged": $SYS/ is reserved for the broker')
  assert.equal(await stack.db.collection('calls').countDocuments({ type: 'published' }), 0, 'the refused publish is not a published event')

  // protocol level 9 does not exist [MQTT-3.1.2-2]
  const socket = await rawSocket(stack.mqttPort)
  t.after(() => socket.destroy())
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ev-proto', clean: true, keepalive: 0 }).fill(9, 8, 9))
  const refused = await waitFor('connectionError', () => stack.db.collection<Call>('calls').findOne({ type: 'connectionError' }))
  assert.equal(refused.event.reason, 'protocol-error')
  assert.equal(refused.event.seq, 1)
  assert.equal(await stack.db.collection('calls').countDocuments({ type: 'clientConnected', 'event.clientId': 'ev-proto' }), 0)
})

test('ready and closed mark a broker instance starting and stopping, with the clients it closed', async (t) => {
  const stack = await startStack(t, { functions })
  const ready = await waitFor('ready', () => stack.db.collection<Call>('calls').findOne({ type: 'ready' }))
  assert.equal(ready.event.brokerId, stack.broker.id)
  assert.deepEqual((ready.event.listeners as { protocol: string }[]).map((l) => l.protocol), ['mqtt', 'ws'])
  await connect(stack.mqttPort, { clientId: 'ev-shut', reconnectPeriod: 0 })
  await callsOf(stack, 'ev-shut', 1)
  await stack.broker.close()
  const closed = await waitFor('closed', () => stack.db.collection<Call>('calls').findOne({ type: 'closed' }))
  assert.equal(closed.event.clients, 1)
  const shut = await callsOf(stack, 'ev-shut', 3)
  assert.deepEqual(shut.map((c) => [c.type, c.event.reason]), [['clientConnected', undefined], ['clientDisconnecting', 'shutdown'], ['clientDisconnected', 'shutdown']])
})

import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createConnection, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { ConnectRate } from '../broker/limits/connect-rate.ts'
import { connect, recorder, startStack, waitFor, type Stack } from './helpers/stack.ts'

/*
 * Each limit of broker/config.ts against a live broker: the exact CONNACK / SUBACK
 * codes, the captured event and its reason, and a client the limit does not concern
 * still publishing and receiving.
 */

const functions = Object.fromEntries(['connectionError', 'clientError', 'clientDisconnecting', 'subscribed', 'published'].map((type) => [`${type}.ts`, recorder(type)]))

interface Recorded {
  type: string
  event: Record<string, unknown> & { clientId: string | null; reason?: string; returnCode?: number; error?: { message: string; code?: string } }
}

function eventsOf(stack: Stack, type: string, filter: Record<string, unknown>, count = 1): Promise<Recorded[]> {
  return waitFor(`${count} ${type} ${JSON.stringify(filter)}`, async () => {
    const found = await stack.db.collection<Recorded>('calls').find({ type, ...filter }).toArray()
    return found.length >= count ? found : undefined
  }, 20_000, 250)
}

/** An MQTT connection on a raw socket, to see the exact packets the broker sends. */
interface Raw {
  socket: Socket
  send(packet: Packet): void
  next(): Promise<Packet>
  closed: Promise<void>
}

async function raw(t: TestContext, port: number, localAddress = '127.0.0.1'): Promise<Raw> {
  const socket = createConnection({ host: '127.0.0.1', port, localAddress })
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  const parser = mqttPacket.parser()
  const queue: Packet[] = []
  const waiting: ((p: Packet) => void)[] = []
  parser.on('packet', (p: Packet) => (waiting.shift() ?? ((x: Packet) => queue.push(x)))(p))
  socket.on('data', (d) => parser.parse(d))
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return {
    socket,
    send: (packet) => socket.write(mqttPacket.generate(packet)),
    next: () => new Promise<Packet>((resolve, reject) => {
      const queued = queue.shift()
      if (queued) return resolve(queued)
      waiting.push(resolve)
      void closed.then(() => reject(new Error('closed before the next packet')))
    }),
    closed,
  }
}

function connectPacket(clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): mqttPacket.IConnectPacket {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0, ...extra }
}

/** The bystander: subscribed to `probe/<id>`, it publishes there and must get the message back. */
async function assertStillServed(client: MqttClient, label: string): Promise<void> {
  const topic = `probe/${client.options.clientId}`
  await client.subscribeAsync(topic, { qos: 1 })
  const got = new Promise<string>((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic || payload.toString() !== label) return
      client.off('message', onMessage)
      resolve(payload.toString())
    }
    client.on('message', onMessage)
  })
  await client.publishAsync(topic, label, { qos: 1 })
  assert.equal(await got, label)
}

test('maxConnections: past it a CONNECT gets CONNACK 3 and a connectionError; a closed connection frees its slot', async (t) => {
  const stack = await startStack(t, { functions, broker: { maxConnections: 2 } })
  const a = await connect(stack.mqttPort, { clientId: 'mc-a' })
  await connect(stack.mqttPort, { clientId: 'mc-b' })

  const third = await raw(t, stack.mqttPort)
  third.send(connectPacket('mc-c'))
  const connack = await third.next()
  assert.deepEqual([connack.cmd, (connack as mqttPacket.IConnackPacket).returnCode], ['connack', 3])
  await third.closed
  const [refused] = await eventsOf(stack, 'connectionError', { 'event.clientId': 'mc-c' })
  assert.equal(refused?.event.reason, 'limit-exceeded')
  assert.equal(refused?.event.returnCode, 3)
  assert.equal(refused?.event.error?.code, 'MQFN_ERR_LIMIT_EXCEEDED')
  assert.equal(refused?.event.error?.message, 'maxConnections exceeded: 2 connections are open (MQFN_MAX_CONNECTIONS)')

  // the same client id again is a takeover [MQTT-3.1.4-2]: let in at the limit
  const b2 = await connect(stack.mqttPort, { clientId: 'mc-b' })
  await assertStillServed(a, 'after-refusal')
  await b2.endAsync()
  // the slot comes back when the socket has closed, which the client does not see
  const d = await waitFor('a freed slot', () => connect(stack.mqttPort, { clientId: 'mc-d' }).catch(() => undefined), 10_000, 200)
  await assertStillServed(d, 'in-freed-slot')
})

test('maxPacketSize: a larger packet closes its connection as soon as its header is read, before or after CONNECT', async (t) => {
  const stack = await startStack(t, { functions, broker: { maxPacketSize: 64 * 1024 } })
  const bystander = await connect(stack.mqttPort, { clientId: 'ps-bystander' })

  // only the fixed header and 100 bytes of a 2 MiB PUBLISH are ever sent: the broker
  // cannot be waiting for the rest
  const s = await raw(t, stack.mqttPort)
  s.send(connectPacket('ps-raw'))
  assert.equal((await s.next()).cmd, 'connack')
  const big = mqttPacket.generate({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(2 * 1024 * 1024, 1), qos: 0, retain: false, dup: false })
  s.socket.write(big.subarray(0, 105))
  await s.closed
  const [error] = await eventsOf(stack, 'clientError', { 'event.clientId': 'ps-raw' })
  assert.equal(error?.event.error?.message, `maxPacketSize exceeded: a PUBLISH packet of ${big.length} bytes; the limit is 65536 (MQFN_MAX_PACKET_SIZE)`)
  assert.equal(error?.event.error?.code, 'MQFN_ERR_LIMIT_EXCEEDED')
  const [closing] = await eventsOf(stack, 'clientDisconnecting', { 'event.clientId': 'ps-raw' })
  assert.equal(closing?.event.reason, 'limit-exceeded')

  // an MQTT.js client sending a whole oversized message is closed the same way
  const sender = await connect(stack.mqttPort, { clientId: 'ps-mqttjs' })
  sender.on('error', () => {}) // the broker resets the socket while it still writes
  const closed = new Promise<void>((resolve) => sender.once('close', () => resolve()))
  sender.publish('big', Buffer.alloc(100_000), { qos: 1 })
  await closed
  const [mqttjs] = await eventsOf(stack, 'clientDisconnecting', { 'event.clientId': 'ps-mqttjs' })
  assert.equal(mqttjs?.event.reason, 'limit-exceeded')

  // over WebSocket, a frame larger than the largest packet is refused by ws before it is buffered whole
  const wsSender = await connect(stack.wsPort, { protocol: 'ws', path: '/mqtt', clientId: 'ps-ws' })
  wsSender.on('error', () => {})
  const wsClosed = new Promise<void>((resolve) => wsSender.once('close', () => resolve()))
  wsSender.publish('big', Buffer.alloc(200_000), { qos: 1 })
  await wsClosed
  const [overWs] = await eventsOf(stack, 'clientDisconnecting', { 'event.clientId': 'ps-ws' })
  assert.ok(overWs, 'the WebSocket client was disconnected')

  // a CONNECT over the limit is refused before a session exists
  const pre = await raw(t, stack.mqttPort)
  pre.socket.write(Buffer.from([0x10, 0x80, 0x80, 0x08])) // CONNECT, remaining length 131072
  await pre.closed
  const [early] = await eventsOf(stack, 'connectionError', { 'event.error.message': /a CONNECT packet of 131076 bytes/ })
  assert.equal(early?.event.reason, 'limit-exceeded')
  assert.equal(early?.event.clientId, null)

  // exactly the limit passes: 65536 bytes in all
  const topic = 'probe/ps-bystander'
  await bystander.subscribeAsync(topic, { qos: 1 })
  const overhead = mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.alloc(60_000), qos: 1, messageId: 1, retain: false, dup: false }).length - 60_000
  const payload = Buffer.alloc(64 * 1024 - overhead, 7)
  const got = new Promise<Buffer>((resolve) => bystander.once('message', (_t, p) => resolve(p)))
  await bystander.publishAsync(topic, payload, { qos: 1 })
  assert.equal((await got).length, payload.length)
  assert.equal(await stack.db.collection('calls').countDocuments({ type: 'published', 'event.topic': 'big' }), 0, 'nothing oversized was published')
})

test('maxTopicLength / maxTopicLevels: a SUBSCRIBE filter over them gets 0x80 alone; a PUBLISH over them closes the connection', async (t) => {
  const stack = await startStack(t, { functions, broker: { maxTopicLength: 64, maxTopicLevels: 4 } })
  const bystander = await connect(stack.mqttPort, { clientId: 'tl-bystander' })

  const s = await raw(t, stack.mqttPort)
  s.send(connectPacket('tl-sub'))
  assert.equal((await s.next()).cmd, 'connack')
  const deep = 'a/b/c/d/e'
  const long = 'é'.repeat(33) // 33 characters, 66 bytes
  s.send({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'ok/+', qos: 1 }, { topic: deep, qos: 1 }, { topic: long, qos: 0 }, { topic: 'a/b/c/#', qos: 0 }] })
  const suback = (await s.next()) as mqttPacket.ISubackPacket
  assert.deepEqual([suback.cmd, suback.messageId, suback.granted], ['suback', 7, [1, 128, 128, 0]])
  const [subscribed] = await eventsOf(stack, 'subscribed', { 'event.clientId': 'tl-sub' })
  assert.deepEqual(subscribed?.event.subscriptions, [{ topic: 'ok/+', qos: 1 }, { topic: deep, qos: 128 }, { topic: long, qos: 128 }, { topic: 'a/b/c/#', qos: 0 }])

  const cases = [
    { clientId: 'tl-levels', topic: deep, message: 'maxTopicLevels exceeded: a topic of 5 levels; the limit is 4 (MQFN_MAX_TOPIC_LEVELS)' },
    { clientId: 'tl-length', topic: long, message: 'maxTopicLength exceeded: a topic of 66 bytes; the limit is 64 (MQFN_MAX_TOPIC_LENGTH)' },
  ]
  for (const c of cases) {
    const publisher = await connect(stack.mqttPort, { clientId: c.clientId })
    publisher.on('error', () => {})
    const closed = new Promise<void>((resolve) => publisher.once('close', () => resolve()))
    publisher.publish(c.topic, 'x', { qos: 1 })
    await closed
    const [error] = await eventsOf(stack, 'clientError', { 'event.clientId': c.clientId })
    assert.equal(error?.event.error?.message, c.message)
    const [closing] = await eventsOf(stack, 'clientDisconnecting', { 'event.clientId': c.clientId })
    assert.equal(closing?.event.reason, 'limit-exceeded')
  }
  assert.equal(await stack.db.collection('calls').countDocuments({ type: 'published', 'event.clientId': { $in: ['tl-levels', 'tl-length'] } }), 0)

  // the granted filters of the same SUBSCRIBE work
  await bystander.publishAsync('ok/1', 'fine', { qos: 1 })
  const delivered = (await s.next()) as mqttPacket.IPublishPacket
  assert.deepEqual([delivered.cmd, delivered.topic, delivered.payload.toString()], ['publish', 'ok/1', 'fine'])
  await assertStillServed(bystander, 'after-topic-limits')
})

test('maxSubscriptionsPerClient: filters past the limit get 0x80, the others are granted; unsubscribing makes room', async (t) => {
  const stack = await startStack(t, { functions, broker: { maxSubscriptionsPerClient: 3 } })
  const s = await raw(t, stack.mqttPort)
  s.send(connectPacket('sl-sub'))
  assert.equal((await s.next()).cmd, 'connack')
  const subscribe = async (messageId: number, topics: string[]) => {
    s.send({ cmd: 'subscribe', messageId, subscriptions: topics.map((topic) => ({ topic, qos: 1 as const })) })
    const suback = (await s.next()) as mqttPacket.ISubackPacket
    assert.equal(suback.messageId, messageId)
    return suback.granted
  }
  assert.deepEqual(await subscribe(1, ['s/1', 's/2']), [1, 1])
  assert.deepEqual(await subscribe(2, ['s/3', 's/4', 's/5']), [1, 128, 128])
  assert.deepEqual(await subscribe(3, ['s/1']), [1], 'a filter it holds is granted again at the limit')
  s.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['s/2'] })
  assert.equal((await s.next()).cmd, 'unsuback')
  assert.deepEqual(await subscribe(5, ['s/6', 's/7']), [1, 128])
  const [second] = await eventsOf(stack, 'subscribed', { 'event.clientId': 'sl-sub', 'event.subscriptions.topic': 's/3' })
  assert.deepEqual(second?.event.subscriptions, [{ topic: 's/3', qos: 1 }, { topic: 's/4', qos: 128 }, { topic: 's/5', qos: 128 }])

  // s/4 was refused, so only s/6 arrives
  const publisher = await connect(stack.mqttPort, { clientId: 'sl-pub' })
  await publisher.publishAsync('s/4', 'refused', { qos: 1 })
  await publisher.publishAsync('s/6', 'granted', { qos: 1 })
  const got = (await s.next()) as mqttPacket.IPublishPacket
  assert.deepEqual([got.topic, got.payload.toString()], ['s/6', 'granted'])
  await assertStillServed(publisher, 'after-subscription-limit')
})

test('client id rules: too long, a control character, or empty without a clean session get CONNACK 2; MQTT 3.1 ids follow clientIdMaxLength, not 23', async (t) => {
  const stack = await startStack(t, { functions, broker: { clientIdMaxLength: 40 } })
  const refusals = [
    { id: 'x'.repeat(41), packet: {}, message: 'client id refused: the client id is 41 characters; the limit is 40 (MQFN_CLIENT_ID_MAX_LENGTH)' },
    { id: 'tab\there', packet: {}, message: String.raw`client id refused: client id "tab\there" contains the control character U+0009 at position 3 [MQTT-1.5.3]` },
    // refused by aedes itself [MQTT-3.1.3-8], before the broker's rules: no code of ours
    { id: '', packet: { clean: false }, message: 'identifier rejected' },
  ]
  for (const r of refusals) {
    const s = await raw(t, stack.mqttPort)
    // mqtt-packet will not write an empty id without a clean session: clear the flag after
    const bytes = mqttPacket.generate(connectPacket(r.id, { ...r.packet, clean: true }))
    if (r.packet.clean === false) bytes[9] = (bytes[9] as number) & ~0x02
    s.socket.write(bytes)
    const connack = (await s.next()) as mqttPacket.IConnackPacket
    assert.deepEqual([connack.cmd, connack.returnCode], ['connack', 2], r.message)
    await s.closed
    const [event] = await eventsOf(stack, 'connectionError', { 'event.error.message': r.message })
    assert.equal(event?.event.reason, 'protocol-error')
    assert.equal(event?.event.returnCode, 2)
    assert.equal(event?.event.error?.code, r.id === '' ? undefined : 'MQFN_ERR_CLIENT_ID')
  }

  // MQTT 3.1: aedes' own limit of 23 follows clientIdMaxLength
  const v31 = { protocolId: 'MQIsdp' as const, protocolVersion: 3 as const }
  const ok31 = await raw(t, stack.mqttPort)
  ok31.send(connectPacket('v31-'.padEnd(30, 'y'), v31))
  assert.equal(((await ok31.next()) as mqttPacket.IConnackPacket).returnCode, 0)
  const long31 = await raw(t, stack.mqttPort)
  long31.send(connectPacket('v31-'.padEnd(41, 'z'), v31))
  assert.equal(((await long31.next()) as mqttPacket.IConnackPacket).returnCode, 2)
  await long31.closed

  // an empty id with a clean session gets one made up, which the rules do not judge
  const anonymous = await raw(t, stack.mqttPort)
  anonymous.send(connectPacket(''))
  assert.equal(((await anonymous.next()) as mqttPacket.IConnackPacket).returnCode, 0)
  await assertStillServed(await connect(stack.mqttPort, { clientId: 'ids-bystander' }), 'after-id-refusals')
})

test('publishRatePerClient: past the rate the broker stops reading that client until the rate allows; nothing is lost, others go on', async (t) => {
  const rate = 10
  const count = 50
  const stack = await startStack(t, { functions, broker: { publishRatePerClient: rate } })
  const subscriber = await connect(stack.mqttPort, { clientId: 'pr-sub' })
  await subscriber.subscribeAsync('rate/#', { qos: 1 })
  const received: string[] = []
  const all = new Promise<void>((resolve) => subscriber.on('message', (_t, p) => {
    received.push(p.toString())
    if (received.length === count + 1) resolve()
  }))

  const flooder = await connect(stack.mqttPort, { clientId: 'pr-flood' })
  const other = await connect(stack.mqttPort, { clientId: 'pr-other' })
  const started = performance.now()
  const acks = Array.from({ length: count }, (_, i) => flooder.publishAsync('rate/flood', String(i), { qos: 1 }))
  // sent while the flooder is held back: served at once, not after the flood
  await other.publishAsync('rate/other', 'other', { qos: 1 })
  await Promise.all(acks)
  const elapsed = performance.now() - started
  await all

  assert.deepEqual(received.filter((m) => m !== 'other'), Array.from({ length: count }, (_, i) => String(i)), 'every message, in order')
  assert.ok(received.indexOf('other') < count, `the other client's message came before the flood ended (at ${received.indexOf('other')})`)
  // a burst of `rate`, then one every 1/rate s: the last can be read no sooner than this
  const floor = ((count - rate) / rate) * 1000
  assert.ok(elapsed >= floor - 50, `${count} publishes at ${rate}/s took ${Math.round(elapsed)} ms, less than ${floor} ms`)
  const published = await eventsOf(stack, 'published', { 'event.clientId': 'pr-flood' }, count)
  assert.equal(published.length, count)
  assert.equal(await stack.db.collection('calls').countDocuments({ type: 'clientDisconnecting', 'event.clientId': 'pr-flood' }), 0, 'the flooder stays connected')

  // QoS 0 trickling in while the client is held back: no acknowledgement would reveal a
  // loss, so count them at the subscriber
  const trickle = 40
  const streamed: string[] = []
  const allStreamed = new Promise<void>((resolve) => subscriber.on('message', (topic, p) => {
    if (topic === 'rate/stream' && streamed.push(p.toString()) === trickle) resolve()
  }))
  const streamer = await connect(stack.mqttPort, { clientId: 'pr-stream' })
  for (let i = 0; i < trickle; i += 4) {
    for (let j = i; j < i + 4; j++) streamer.publish('rate/stream', String(j), { qos: 0 })
    await new Promise((r) => setTimeout(r, 20))
  }
  await allStreamed
  assert.deepEqual(streamed, Array.from({ length: trickle }, (_, i) => String(i)))
})

test('connectRatePerIp: past it a connection is closed before CONNECT and counted into a summary connectionError; other addresses connect meanwhile', async (t) => {
  const stack = await startStack(t, { functions, broker: { connectRatePerIp: 2, connectionErrorWindowMs: 1000 } })
  const bystander = await connect(stack.mqttPort, { clientId: 'cr-bystander' })
  const attempts = 8
  const outcomes = await Promise.all(Array.from({ length: attempts }, async (_, i) => {
    const s = await raw(t, stack.mqttPort, '127.0.0.2')
    s.send(connectPacket(`cr-${i}`))
    return Promise.race([s.next().then((p) => (p as mqttPacket.IConnackPacket).returnCode === 0 ? 'accepted' : 'refused-connack', () => 'closed'), s.closed.then(() => 'closed')])
  }))
  const closed = outcomes.filter((o) => o === 'closed').length
  const accepted = outcomes.filter((o) => o === 'accepted').length
  assert.equal(closed + accepted, attempts, `outcomes: ${outcomes.join(', ')}`)
  assert.ok(accepted >= 2, 'a burst of the rate is let in')
  assert.ok(closed >= 1, 'the connections past the rate are closed')

  const other = await raw(t, stack.mqttPort, '127.0.0.3')
  other.send(connectPacket('cr-other-ip'))
  assert.equal(((await other.next()) as mqttPacket.IConnackPacket).returnCode, 0, 'another address is not limited')

  // one summary per address per window, not an event per connection (docs/security.md)
  const events = await waitFor(`summaries counting ${closed} connections`, async () => {
    const found = await stack.db.collection<Recorded>('calls').find({ type: 'connectionError', 'event.remoteAddress': '127.0.0.2' }).toArray()
    return found.reduce((n, e) => n + Number(e.event.count ?? 0), 0) >= closed ? found : undefined
  }, 20_000, 250)
  assert.ok(events.length <= 2, `${events.length} summary events`)
  for (const e of events) {
    assert.equal(e.event.reason, 'limit-exceeded')
    assert.equal(e.event.clientId, null)
    assert.equal(e.event.error?.message, `connectRatePerIp exceeded: ${String(e.event.count)} connections from 127.0.0.2 closed in 1 s, more than 2 a second (MQFN_CONNECT_RATE_PER_IP)`)
  }
  assert.equal(events.reduce((n, e) => n + Number(e.event.count), 0), closed)
  await assertStillServed(bystander, 'after-connect-flood')
})

test('the per-address connect rate map forgets quiet addresses', (t) => {
  let now = 0
  const rate = new ConnectRate(2, 60_000, () => now)
  t.after(() => rate.close())
  for (let i = 0; i < 1000; i++) assert.equal(rate.allow(`10.0.${i >> 8}.${i & 255}`), true)
  assert.equal(rate.allow('10.0.0.0'), true)
  assert.equal(rate.allow('10.0.0.0'), false, 'third within the second')
  assert.equal(rate.size, 1000)
  now = 400
  rate.prune()
  assert.equal(rate.size, 1000, 'not yet back to a full bucket')
  now = 900
  rate.prune()
  assert.equal(rate.size, 1, 'only the address that used its whole burst is left')
  now = 2000
  rate.prune()
  assert.equal(rate.size, 0)
})

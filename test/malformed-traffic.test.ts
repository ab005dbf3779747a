import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createConnection, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { connect, recorder, startStack, waitFor, type Stack } from './helpers/stack.ts'
import { prng } from './helpers/prng.ts'

/*
 * Crafted bytes on raw sockets, one malformed input per case. Each must end its own
 * connection with an event giving the reason, while a bystander connected throughout
 * keeps being served. Valid packets come from mqtt-packet's generate and are then
 * corrupted.
 */

const functions = Object.fromEntries(['connectionError', 'clientError', 'clientDisconnecting'].map((type) => [`${type}.ts`, recorder(type)]))

interface Recorded {
  type: string
  event: { clientId: string | null; reason?: string; returnCode?: number; error?: { message: string; code?: string } }
}


interface Probe {
  socket: Socket
  /** Every byte the broker sent. */
  received(): Buffer
  /** Resolves when the broker has closed the connection (we never close it first). */
  closed: Promise<void>
}

async function open(t: TestContext, port: number): Promise<Probe> {
  const socket = createConnection({ host: '127.0.0.1', port })
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (d: Buffer) => chunks.push(d))
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return { socket, received: () => Buffer.concat(chunks), closed }
}

const connectBytes = (clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}) =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0, ...extra })
const publishBytes = (topic: string) => mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00])

/** Opens a session on a raw socket and returns it once CONNACK 0 is in. */
async function session(t: TestContext, port: number, clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): Promise<Probe> {
  const p = await open(t, port)
  p.socket.write(connectBytes(clientId, extra))
  await waitFor(`CONNACK for ${clientId}`, () => p.received().length >= 4)
  assert.deepEqual(p.received().subarray(0, 4), CONNACK_OK)
  return p
}

async function eventWhere(stack: Stack, type: string, filter: Record<string, unknown>): Promise<Recorded['event']> {
  const found = await waitFor(`${type} ${JSON.stringify(filter)}`, () => stack.db.collection<Recorded>('calls').findOne({ type, ...filter }), 20_000, 250)
  return found.event
}

/** A connection refused before CONNECT completed: connectionError with this message and reason. */
async function assertRefused(stack: Stack, message: string, reason: string, returnCode?: number): Promise<void> {
  const event = await eventWhere(stack, 'connectionError', { 'event.error.message': message })
  assert.equal(event.reason, reason, message)
  assert.equal(event.returnCode, returnCode, message)
}

/** An established session closed: clientError with this message, then clientDisconnecting with the reason. */
async function assertEnded(stack: Stack, clientId: string, message: string, reason: string): Promise<void> {
  const error = await eventWhere(stack, 'clientError', { 'event.clientId': clientId })
  assert.equal(error.error?.message, message)
  const closing = await eventWhere(stack, 'clientDisconnecting', { 'event.clientId': clientId })
  assert.equal(closing.reason, reason)
}

test('each malformed input ends only its own connection, with the reason; a bystander is served throughout', async (t) => {
  const stack = await startStack(t, { functions, broker: { clientConnectTimeoutMs: 2000 } })
  const port = stack.mqttPort
  const bystander = await connect(port, { clientId: 'mf-bystander' })
  let reconnects = 0
  let closes = 0
  bystander.on('connect', () => reconnects++)
  bystander.on('close', () => closes++)
  await bystander.subscribeAsync('probe/#', { qos: 1 })
  const assertBystanderServed = async (label: string) => {
    const got = new Promise<void>((resolve) => {
      const onMessage = (topic: string) => {
        if (topic !== `probe/${label}`) return
        bystander.off('message', onMessage)
        resolve()
      }
      bystander.on('message', onMessage)
    })
    await bystander.publishAsync(`probe/${label}`, label, { qos: 1 })
    await got
  }

  await t.test('random bytes', async () => {
    const next = prng(20240607)
    const p = await open(t, port)
    p.socket.write(Buffer.from(Array.from({ length: 64 }, () => Math.floor(next() * 256))))
    await p.closed
    assert.equal(p.received().length, 0)
    // this seed starts 1f f5 8e 6f: a CONNECT header announcing 1.8 MB, refused on sight
    await assertRefused(stack, 'maxPacketSize exceeded: a CONNECT packet of 1820537 bytes; the limit is 1048576 (MQFN_MAX_PACKET_SIZE)', 'limit-exceeded')
    // with a sane length, the reserved flag bits of the same first byte [MQTT-2.2.2-2]
    const q = await open(t, port)
    q.socket.write(Buffer.from([0x1f, 0x02, 0x00, 0x00]))
    await q.closed
    await assertRefused(stack, 'Invalid header flag bits, must be 0x0 for connect packet', 'protocol-error')
    await assertBystanderServed('random')
  })

  await t.test('a truncated CONNECT, then silence: closed at clientConnectTimeoutMs', async () => {
    const p = await open(t, port)
    p.socket.write(connectBytes('mf-truncated').subarray(0, 9))
    await p.closed
    assert.equal(p.received().length, 0)
    await assertRefused(stack, 'connect did not arrive in time', 'connect-timeout')
    await assertBystanderServed('truncated-connect')
  })

  await t.test('a truncated PUBLISH in a session, then silence: closed by the keepalive', async () => {
    const p = await session(t, port, 'mf-truncated-publish', { keepalive: 1 })
    p.socket.write(publishBytes('a/b').subarray(0, 4))
    await p.closed
    const closing = await eventWhere(stack, 'clientDisconnecting', { 'event.clientId': 'mf-truncated-publish' })
    assert.equal(closing.reason, 'keepalive-timeout')
    await assertBystanderServed('truncated-publish')
  })

  await t.test('a remaining length of 5 bytes', async () => {
    const p = await open(t, port)
    p.socket.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]))
    await p.closed
    await assertRefused(stack, 'protocol violation: the remaining length of a CONNECT packet runs past 4 bytes [MQTT-2.2.3]', 'protocol-error')
    const s = await session(t, port, 'mf-varint')
    s.socket.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))
    await s.closed
    await assertEnded(stack, 'mf-varint', 'protocol violation: the remaining length of a PUBLISH packet runs past 4 bytes [MQTT-2.2.3]', 'protocol-error')
    await assertBystanderServed('varint')
  })

  await t.test('a remaining length that lies: shorter than the packet', async () => {
    const s = await session(t, port, 'mf-short-length')
    const bytes = Buffer.from(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'abc', qos: 0 }] }))
    bytes[1] = 4 // messageId and the topic length: the topic and its options fall outside
    s.socket.write(bytes)
    await s.closed
    await assertEnded(stack, 'mf-short-length', 'Cannot parse topic', 'protocol-error')
    await assertBystanderServed('short-length')
  })

  await t.test('a wrong protocol name: closed without CONNACK', async () => {
    const p = await open(t, port)
    const bytes = connectBytes('mf-name')
    bytes.write('MQTX', 4, 'latin1')
    p.socket.write(bytes)
    await p.closed
    assert.equal(p.received().length, 0)
    await assertRefused(stack, 'protocol violation: protocol name "MQTX" is neither "MQTT" nor "MQIsdp" [MQTT-3.1.2-1]', 'protocol-error')
    await assertBystanderServed('name')
  })

  await t.test('a wrong protocol level: CONNACK 1, then closed', async () => {
    const p = await open(t, port)
    const bytes = connectBytes('mf-level')
    bytes[8] = 9
    p.socket.write(bytes)
    await p.closed
    assert.deepEqual(p.received(), Buffer.from([0x20, 0x02, 0x00, 0x01]))
    await assertRefused(stack, 'protocol violation: unacceptable protocol level 9; this broker speaks MQTT 3.1 (3), 3.1.1 (4) and 5.0 (5) [MQTT-3.1.2-2]', 'protocol-error', 1)
    // level 5 is MQTT 5.0: served, with an MQTT 5 CONNACK (reason code 0 Success) [MQTT-3.2.2-6]
    const v5 = await open(t, port)
    v5.socket.write(connectBytes('mf-level-5', { protocolVersion: 5 }))
    await waitFor('a v5 CONNACK', () => v5.received().length >= 5)
    const connack = v5.received()
    assert.deepEqual([connack[0], connack[2], connack[3]], [0x20, 0x00, 0x00])
    await assertBystanderServed('level')
  })

  await t.test('a second CONNECT', async () => {
    const s = await session(t, port, 'mf-twice')
    s.socket.write(connectBytes('mf-twice'))
    await s.closed
    await assertEnded(stack, 'mf-twice', 'protocol violation: a second CONNECT on the same connection [MQTT-3.1.0-2]', 'protocol-error')
    await assertBystanderServed('twice')
  })

  await t.test('+ and # in a PUBLISH topic', async () => {
    for (const [clientId, topic, message] of [['mf-plus', 'a/+/b', '+ is not allowed in PUBLISH'], ['mf-hash', 'a/#', '# is not allowed in PUBLISH']] as const) {
      const s = await session(t, port, clientId)
      s.socket.write(publishBytes(topic))
      await s.closed
      await assertEnded(stack, clientId, message, 'protocol-error')
    }
    await assertBystanderServed('wildcards')
  })

  await t.test('ill-formed UTF-8 and U+0000 in a topic', async () => {
    const bad = publishBytes('bad/xx')
    bad.set([0xc3, 0x28], bad.indexOf('xx')) // a lead byte without its continuation
    const s = await session(t, port, 'mf-utf8')
    s.socket.write(bad)
    await s.closed
    await assertEnded(stack, 'mf-utf8', 'protocol violation: a string (topic, client id, username) is not well-formed UTF-8 [MQTT-1.5.3-1]', 'protocol-error')
    const nul = await session(t, port, 'mf-nul')
    nul.socket.write(publishBytes('bad/\u0000'))
    await nul.closed
    await assertEnded(stack, 'mf-nul', 'protocol violation: a string (topic, client id, username) contains U+0000 [MQTT-1.5.3-2]', 'protocol-error')
    // a well-formed U+FFFD is a character like any other
    const replacement = await session(t, port, 'mf-fffd')
    replacement.socket.write(publishBytes('probe/\uFFFD'))
    replacement.socket.write(mqttPacket.generate({ cmd: 'pingreq' }))
    await waitFor('PINGRESP', () => replacement.received().includes(Buffer.from([0xd0, 0x00])))
    await assertBystanderServed('utf8')
  })

  await t.test('a PUBLISH before CONNECT, and a packet only servers send', async () => {
    const p = await open(t, port)
    p.socket.write(publishBytes('early/bird'))
    await p.closed
    assert.equal(p.received().length, 0)
    await assertRefused(stack, 'protocol violation: PUBLISH before CONNECT; the first packet must be CONNECT [MQTT-3.1.0-1]', 'protocol-error')
    const s = await session(t, port, 'mf-connack')
    s.socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
    await s.closed
    await assertEnded(stack, 'mf-connack', 'protocol violation: CONNACK is a packet only a server sends', 'protocol-error')
    await assertBystanderServed('order')
  })

  assert.equal(reconnects, 0, 'the bystander never reconnected')
  assert.equal(closes, 0, 'the bystander was never disconnected')
  assert.equal(await stack.db.collection('calls').countDocuments({ 'event.clientId': 'mf-bystander' }), 0, 'no error or disconnect event for the bystander')
})

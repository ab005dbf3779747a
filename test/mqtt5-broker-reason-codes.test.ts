import assert from 'node:assert/strict'
import { test } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { securityFiles } from './helpers/auth.ts'
import { connectPacket, rawV5, sessionV5 } from './helpers/mqtt5.ts'
import { connectPacket as connectPacket311, rawClient } from './helpers/raw-mqtt.ts'
import { startStack, waitFor, type Stack } from './helpers/stack.ts'

/*
 * The broker's own limits, as an MQTT 5 client hears of them: the reason code of the
 * DISCONNECT, CONNACK, SUBACK and PUBACK that refuses [MQTT-3.14.2-1] [MQTT-3.9.3-1]
 * [MQTT-3.4.2-1], and in the event that records it. A 3.1.1 client gets what 3.1.1
 * can say (0x80, the close). Raw mqtt-packet sockets: the exact bytes are the point.
 */

type Doc = { type: string; clientId: string | null; reason?: string; reasonCode?: number; reasonCodeFrom?: string; topic?: string; subscriptions?: { topic: string; qos: number }[] }

const eventOf = (stack: Stack, query: Record<string, unknown>) =>
  waitFor(`event ${JSON.stringify(query)}`, () => stack.db.collection<Doc>('events').findOne(query), 20_000, 200)

test('MQTT 5 reason codes for the broker\'s limits', async (t) => {
  const files = await securityFiles(t, ['dev'], ['  - deny: subscribe', '    topic: secret/#', '  - allow: all', '    topic: "#"'])
  const stack = await startStack(t, {
    functions: {},
    broker: { auth: 'required', ...files, maxPacketSize: 2048, maxSubscriptionsPerClient: 2, maxTopicLength: 64, maxConnections: 3 },
  })
  const port = stack.mqttPort
  const creds = { username: 'dev', password: Buffer.from('pw-1234') }

  await t.test('[MQTT-3.2.2.3.6] the CONNACK advertises maxPacketSize as Maximum Packet Size', async (t) => {
    const raw = await sessionV5(t, port, 'rc-connack', creds)
    assert.equal((await raw.packet('connack')).properties?.maximumPacketSize, 2048)
  })

  await t.test('[MQTT-3.2.2-15] a packet over maxPacketSize gets DISCONNECT 0x95 (Packet too large); clientDisconnecting carries it', async (t) => {
    const raw = await sessionV5(t, port, 'rc-too-large', creds)
    raw.send({ cmd: 'publish', topic: 'rc/big', qos: 0, payload: Buffer.alloc(4096, 0x61), retain: false, dup: false })
    await raw.closed
    assert.deepEqual(raw.packets.map((p) => [p.cmd, p.cmd === 'disconnect' ? p.reasonCode : undefined]), [['connack', undefined], ['disconnect', 0x95]])
    const ev = await eventOf(stack, { type: 'clientDisconnecting', clientId: 'rc-too-large' })
    assert.deepEqual([ev.reason, ev.reasonCode, ev.reasonCodeFrom], ['limit-exceeded', 0x95, 'broker'])
  })

  await t.test('MQTT 3.1.1: the same packet closes the connection, no DISCONNECT (3.1.1 has no server DISCONNECT)', async (t) => {
    const raw = await rawClient(t, port, 4)
    raw.send(connectPacket311('rc-too-large-311', { ...creds }))
    await raw.next('connack')
    raw.send({ cmd: 'publish', topic: 'rc/big', qos: 0, payload: Buffer.alloc(4096, 0x61), retain: false, dup: false })
    await raw.closed
    assert.deepEqual(raw.packets.map((p) => p.cmd), ['connack'])
  })

  await t.test('[MQTT-4.13.1-1] a second CONNECT gets DISCONNECT 0x82 (Protocol Error) [MQTT-3.1.0-2]', async (t) => {
    const raw = await sessionV5(t, port, 'rc-second-connect', creds)
    raw.send(connectPacket('rc-second-connect', creds))
    await raw.closed
    assert.deepEqual(raw.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x82])
  })

  await t.test('[MQTT-1.5.4-1] a topic that is not well-formed UTF-8 gets DISCONNECT 0x81 (Malformed Packet)', async (t) => {
    const raw = await sessionV5(t, port, 'rc-bad-utf8', creds)
    const bytes = mqttPacket.generate({ cmd: 'publish', topic: 'ab', qos: 0, payload: Buffer.from('x'), retain: false, dup: false }, { protocolVersion: 5 })
    // fixed header (2), topic length (2), then the topic's two bytes: never UTF-8
    bytes[4] = 0xff
    bytes[5] = 0xfe
    raw.socket.write(bytes)
    await raw.closed
    assert.deepEqual(raw.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x81])
    const ev = await eventOf(stack, { type: 'clientDisconnecting', clientId: 'rc-bad-utf8' })
    assert.deepEqual([ev.reason, ev.reasonCode], ['protocol-error', 0x81])
  })

  await t.test('[MQTT-3.9.3-1] SUBACK: 0x87 for a filter the ACL refuses, 0x97 past maxSubscriptionsPerClient, 0x8F over maxTopicLength; the others granted', async (t) => {
    const raw = await sessionV5(t, port, 'rc-suback', creds)
    raw.send({ cmd: 'subscribe', messageId: 7, subscriptions: [
      { topic: 'secret/x', qos: 1 }, { topic: 'rc/a', qos: 1 }, { topic: 'rc/b', qos: 0 }, { topic: 'rc/c', qos: 1 }, { topic: `rc/${'l'.repeat(80)}`, qos: 0 },
    ] })
    const suback = await raw.packet('suback')
    assert.deepEqual(suback.granted, [0x87, 1, 0, 0x97, 0x8f])
    const ev = await eventOf(stack, { type: 'subscribed', clientId: 'rc-suback' })
    assert.deepEqual(ev.subscriptions?.map((s) => s.qos), [0x87, 1, 0, 0x97, 0x8f])
  })

  await t.test('MQTT 3.1.1 SUBACK: 0x80 for each of those refusals [MQTT-3.9.3-2]', async (t) => {
    const raw = await rawClient(t, port, 4)
    raw.send(connectPacket311('rc-suback-311', { ...creds }))
    await raw.next('connack')
    raw.send({ cmd: 'subscribe', messageId: 7, subscriptions: [
      { topic: 'secret/x', qos: 1 }, { topic: 'rc/a', qos: 1 }, { topic: 'rc/b', qos: 0 }, { topic: 'rc/c', qos: 1 }, { topic: `rc/${'l'.repeat(80)}`, qos: 0 },
    ] })
    const suback = (await raw.next('suback')) as mqttPacket.ISubackPacket
    assert.deepEqual(suback.granted, [0x80, 1, 0, 0x80, 0x80])
  })

  await t.test('[MQTT-3.4.2-1] PUBACK 0x90 (Topic Name invalid) for a topic over maxTopicLength; the connection stays; clientError records it', async (t) => {
    const raw = await sessionV5(t, port, 'rc-puback', creds)
    const long = `rc/${'t'.repeat(80)}`
    raw.send({ cmd: 'publish', topic: long, qos: 1, messageId: 3, payload: Buffer.from('x'), retain: false, dup: false })
    assert.equal((await raw.packet('puback')).reasonCode, 0x90)
    raw.send({ cmd: 'publish', topic: 'rc/ok', qos: 1, messageId: 4, payload: Buffer.from('x'), retain: false, dup: false })
    assert.equal((await raw.packet('puback', 1)).reasonCode, 0)
    const ev = await eventOf(stack, { type: 'clientError', clientId: 'rc-puback' })
    assert.deepEqual([ev.reason, ev.topic, ev.reasonCode], ['limit-exceeded', long, 0x90])
    raw.send({ cmd: 'disconnect', reasonCode: 0 })
    await raw.closed
    // the refusal did not become the reason the connection ended [MQTT-3.14.4-3]
    const gone = await eventOf(stack, { type: 'clientDisconnected', clientId: 'rc-puback' })
    assert.equal(gone.reason, 'disconnect')
  })

  await t.test('§3.2.2.2 CONNACK 0x97 (Quota exceeded) past maxConnections; 3.1.1 gets 3 (Server unavailable); connectionError carries it', async (t) => {
    const held = await Promise.all([1, 2, 3].map((i) => sessionV5(t, port, `rc-full-${i}`, creds)))
    const refused = await rawV5(t, port, connectPacket('rc-full-v5', creds))
    assert.equal((await refused.packet('connack')).reasonCode, 0x97)
    await refused.closed
    const old = await rawClient(t, port, 4)
    old.send(connectPacket311('rc-full-311', { ...creds }))
    assert.equal(((await old.next('connack')) as mqttPacket.IConnackPacket).returnCode, 3)
    const ev = await eventOf(stack, { type: 'connectionError', clientId: 'rc-full-v5' })
    assert.equal(ev.reasonCode, 0x97)
    for (const h of held) h.socket.destroy()
  })
})

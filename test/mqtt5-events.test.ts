import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import type { Binary } from 'mongodb'
import { connect, startStack, waitFor, type Stack } from './helpers/stack.ts'
import { connectPacket, rawClient } from './helpers/raw-mqtt.ts'

/*
 * MQTT 5 in the events: what an MQTT 5 client sends (CONNECT and PUBLISH properties,
 * subscription options, DISCONNECT reason codes) reaches the event log, and a 3.1.1
 * client's events carry none of it. MQTT.js at protocolVersion 5 and 4, and
 * mosquitto_pub -V mqttv5.
 */

const run = promisify(execFile)

type Doc = Record<string, unknown> & { type: string; clientId: string | null; properties?: Record<string, unknown> & { correlationData?: Binary } }

const eventsOf = (stack: Stack, clientId: string, count: number) => waitFor(`${count} events of ${clientId}`, async () => {
  const docs = await stack.db.collection<Doc>('events').find({ clientId }).sort({ seq: 1 }).toArray()
  return docs.length >= count && docs
}, 20_000, 200)

test('an MQTT 5 session: CONNECT and PUBLISH properties, subscription options and the DISCONNECT reason code are in its events', async (t) => {
  const stack = await startStack(t, { functions: {} })
  const client = await connect(stack.mqttPort, {
    clientId: 'v5-props',
    protocolVersion: 5,
    clean: true,
    properties: { sessionExpiryInterval: 60, receiveMaximum: 10, maximumPacketSize: 4096, userProperties: { site: 'lab', tag: ['a', 'b'] } },
  })
  await client.subscribeAsync('v5/#', { qos: 1, nl: true, rap: true, rh: 2, properties: { subscriptionIdentifier: 7 } })
  const correlationData = Buffer.from([0x00, 0x01, 0xfe, 0xff])
  await client.publishAsync('v5/req', '{"t":21}', {
    qos: 1,
    properties: { payloadFormatIndicator: true, messageExpiryInterval: 30, contentType: 'application/json', responseTopic: 'v5/answers', correlationData, userProperties: { unit: 'C' } },
  })
  // [MQTT-3.14.2-1]: 0x04 Disconnect with Will Message, a reason code only MQTT 5 has
  await new Promise<void>((resolve) => client.end(false, { reasonCode: 0x04 }, () => resolve()))

  const docs = await eventsOf(stack, 'v5-props', 5)
  assert.deepEqual(docs.map((d) => d.type), ['clientConnected', 'subscribed', 'published', 'clientDisconnecting', 'clientDisconnected'])
  const [connected, subscribed, published, disconnecting, disconnected] = docs as unknown as [Doc, Doc, Doc, Doc, Doc]
  assert.equal(connected.protocolVersion, 5)
  // [MQTT-3.1.2-11.2..] as sent, and granted unchanged (no sessionExpiryIntervalLimit)
  assert.deepEqual(connected.properties, { sessionExpiryInterval: 60, receiveMaximum: 10, maximumPacketSize: 4096, userProperties: { site: 'lab', tag: ['a', 'b'] } })
  // [MQTT-3.8.3.1]: the options byte, and the subscription identifier [MQTT-3.8.2.1.2]
  assert.deepEqual(subscribed.subscriptions, [{ topic: 'v5/#', qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionIdentifier: 7 }])
  const { correlationData: stored, ...others } = published.properties ?? {}
  assert.deepEqual(others, { payloadFormatIndicator: true, messageExpiryInterval: 30, contentType: 'application/json', responseTopic: 'v5/answers', userProperties: { unit: 'C' } })
  // bytes in the event log, as sent
  assert.deepEqual(Buffer.from((stored as Binary).buffer), correlationData)
  for (const d of [disconnecting, disconnected]) {
    assert.deepEqual([d.reason, d.reasonCode, d.reasonCodeFrom], ['disconnect', 0x04, 'client'])
  }
})

test('a 3.1.1 session has no MQTT 5 fields; a v5 connection taken over gets 0x8E from the broker [MQTT-3.1.4-2]', async (t) => {
  const stack = await startStack(t, { functions: {} })
  const v4 = await connect(stack.mqttPort, { clientId: 'v4-plain', protocolVersion: 4 })
  await v4.subscribeAsync('v4/#', { qos: 1 })
  await v4.publishAsync('v4/x', 'x', { qos: 1 })
  await v4.endAsync()
  const plain = await eventsOf(stack, 'v4-plain', 5)
  assert.equal(plain[0]?.protocolVersion, 4)
  for (const d of plain) {
    for (const key of ['properties', 'reasonCode', 'reasonCodeFrom']) assert.equal(key in d, false, `${d.type} has ${key}`)
  }
  assert.deepEqual(plain[1]?.subscriptions, [{ topic: 'v4/#', qos: 1 }])

  const first = await connect(stack.mqttPort, { clientId: 'v5-taken', protocolVersion: 5, reconnectPeriod: 0 })
  const told = new Promise<number | undefined>((resolve) => first.once('disconnect', (packet) => resolve(packet.reasonCode)))
  await connect(stack.mqttPort, { clientId: 'v5-taken', protocolVersion: 5 })
  assert.equal(await told, 0x8e)
  const docs = await waitFor('the first connection ends', async () => {
    const found = await stack.db.collection<Doc>('events').find({ clientId: 'v5-taken', type: 'clientDisconnected' }).toArray()
    return found.length === 1 && found
  }, 20_000, 200)
  assert.deepEqual([docs[0]?.reason, docs[0]?.reasonCode, docs[0]?.reasonCodeFrom], ['takeover', 0x8e, 'broker'])
})

test('a refused MQTT 5 CONNECT: its connectionError has the CONNACK reason code sent [MQTT-3.2.2.2]; mosquitto_pub -V mqttv5 properties arrive', async (t) => {
  const stack = await startStack(t, { functions: {} })
  const raw = await rawClient(t, stack.mqttPort, 5)
  // a control character: refused (spaces and other UTF-8 are accepted [MQTT-3.1.3-5])
  raw.send(connectPacket('bell\u0007id', { protocolVersion: 5 }))
  const connack = await raw.next('connack')
  // 0x85 Client Identifier not valid, the MQTT 5 form of 3.1.1's return code 2
  assert.equal((connack as { reasonCode?: number }).reasonCode, 0x85)
  await raw.closed
  const [refused] = await waitFor('connectionError', async () => {
    const found = await stack.db.collection<Doc>('events').find({ type: 'connectionError', clientId: 'bell\u0007id' }).toArray()
    return found.length > 0 && found
  }, 20_000, 200)
  assert.equal(refused?.reasonCode, 0x85)
  assert.equal('returnCode' in (refused ?? {}), false)

  await run('mosquitto_pub', ['-V', 'mqttv5', '-h', '127.0.0.1', '-p', String(stack.mqttPort), '-i', 'mosq-v5', '-t', 'mosq/x', '-m', 'hi', '-q', '1',
    '-D', 'publish', 'content-type', 'text/plain', '-D', 'publish', 'user-property', 'k', 'v', '-D', 'publish', 'response-topic', 'mosq/answers',
    '-D', 'connect', 'session-expiry-interval', '0'])
  const docs = await eventsOf(stack, 'mosq-v5', 4)
  assert.equal(docs[0]?.protocolVersion, 5)
  const published = docs.find((d) => d.type === 'published')
  assert.deepEqual(published?.properties, { contentType: 'text/plain', responseTopic: 'mosq/answers', userProperties: { k: 'v' } })
})

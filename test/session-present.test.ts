import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet'
import { startStack } from './helpers/stack.ts'
import { connectPacket, rawClient } from './helpers/raw-mqtt.ts'

/*
 * Session Present on the wire, byte by byte (mqtt-packet, no client library):
 * a stored session is present even with no subscriptions and nothing queued.
 * aedes 2.0.0-beta.1 said 0 there (patches/aedes+2.0.0-beta.1+005+session-present.patch).
 */

async function sessionPresent(t: TestContext, port: number, clientId: string, extra: Partial<IConnectPacket>): Promise<boolean> {
  const version = extra.protocolVersion ?? 4
  const raw = await rawClient(t, port, version as 4 | 5)
  raw.send(connectPacket(clientId, extra))
  const connack = (await raw.next('connack')) as IConnackPacket
  assert.equal(version === 5 ? connack.reasonCode : connack.returnCode, 0)
  raw.send({ cmd: 'disconnect' })
  await raw.closed
  return connack.sessionPresent
}

test('MQTT 3.1.1: Session Present 1 for every stored session, also one with no subscriptions [MQTT-3.2.2-2]', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const port = stack.mqttPort
  // [MQTT-3.2.2-3]: nothing stored yet
  assert.equal(await sessionPresent(t, port, 'sp-4', { clean: false }), false)
  // [MQTT-3.1.2-4]: the session was stored when the connection ended [MQTT-3.1.2-5]
  assert.equal(await sessionPresent(t, port, 'sp-4', { clean: false }), true)
  // [MQTT-3.2.2-1]: a clean session is never present, and discards the stored one [MQTT-3.1.2-6]
  assert.equal(await sessionPresent(t, port, 'sp-4', { clean: true }), false)
  assert.equal(await sessionPresent(t, port, 'sp-4', { clean: false }), false)
  // another id's session is its own
  assert.equal(await sessionPresent(t, port, 'sp-4-other', { clean: false }), false)

  // and with a subscription, as before
  const sub = await rawClient(t, port)
  sub.send(connectPacket('sp-4-sub', { clean: false }))
  await sub.next('connack')
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sp/#', qos: 1 }] })
  await sub.next('suback')
  sub.send({ cmd: 'disconnect' })
  await sub.closed
  assert.equal(await sessionPresent(t, port, 'sp-4-sub', { clean: false }), true)
})

test('MQTT 5: Session Present 1 when Clean Start is 0 and a session is stored [MQTT-3.2.2-2 of 5.0]; a session expiry of 0 stores none', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const port = stack.mqttPort
  const keep = { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 300 } }
  assert.equal(await sessionPresent(t, port, 'sp-5', keep), false)
  assert.equal(await sessionPresent(t, port, 'sp-5', keep), true)
  // Clean Start 1 [MQTT-3.1.2-4 of 5.0]: not present, though a new session is stored for later
  assert.equal(await sessionPresent(t, port, 'sp-5', { ...keep, clean: true }), false)
  assert.equal(await sessionPresent(t, port, 'sp-5', keep), true)
  // expiry 0: the session ends with the connection [MQTT-3.1.2-23 of 5.0]
  assert.equal(await sessionPresent(t, port, 'sp-5-gone', { protocolVersion: 5, clean: false }), false)
  assert.equal(await sessionPresent(t, port, 'sp-5-gone', { protocolVersion: 5, clean: false }), false)
})

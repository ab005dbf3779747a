import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startStack } from './helpers/stack.ts'
import { connectPacket, rawV5, sessionV5 } from './helpers/mqtt5.ts'

/*
 * MQTT 5.0 CONNECT/CONNACK, AUTH and the broker's DISCONNECT, checked on the bytes
 * (mqtt-packet on a raw socket) where MQTT.js would hide them.
 */

test('MQTT 5 CONNECT, CONNACK and AUTH', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const port = stack.mqttPort

  await t.test('[MQTT-4.12.0-1] an unsupported Authentication Method gets CONNACK 0x8C and the connection closed', async (t) => {
    const raw = await rawV5(t, port, connectPacket('v5-auth-method', { properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from('n,,n=user') } }))
    await raw.closed
    // fixed header 0x20, length 3, session present 0, reason 0x8C, no properties
    assert.deepEqual(raw.bytes(), Buffer.from([0x20, 0x03, 0x00, 0x8c, 0x00]))
  })

  await t.test('[MQTT-4.12.0-7] an AUTH packet without enhanced authentication gets DISCONNECT 0x82 (Protocol Error)', async (t) => {
    const raw = await sessionV5(t, port, 'v5-auth-packet')
    raw.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-1' } })
    await raw.closed
    const disconnects = raw.packets.filter((p) => p.cmd === 'disconnect')
    assert.equal(disconnects.length, 1)
    assert.equal(disconnects[0]?.reasonCode, 0x82)
  })

  await t.test('[MQTT-3.2.2-16] an empty client id is assigned one, returned in the CONNACK', async (t) => {
    const raw = await rawV5(t, port, connectPacket(''))
    const connack = await raw.packet('connack')
    assert.equal(connack.reasonCode, 0)
    const assigned = connack.properties?.assignedClientIdentifier
    assert.ok(typeof assigned === 'string' && assigned.length > 0, `assigned id: ${String(assigned)}`)
  })

  await t.test('§3.2.2.3.8 the CONNACK advertises the Topic Alias Maximum; no Receive Maximum by default (65535)', async (t) => {
    const raw = await sessionV5(t, port, 'v5-connack-props')
    const connack = await raw.packet('connack')
    assert.equal(connack.properties?.topicAliasMaximum, 32)
    assert.equal(connack.properties?.receiveMaximum, undefined)
  })

  await t.test('[MQTT-3.1.4-3] a takeover sends the old connection DISCONNECT 0x8E (Session taken over)', async (t) => {
    const first = await sessionV5(t, port, 'v5-takeover')
    await sessionV5(t, port, 'v5-takeover')
    await first.closed
    assert.deepEqual(first.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x8e])
  })

  await t.test('[MQTT-3.14.2-1] broker shutdown sends DISCONNECT 0x8B (Server shutting down)', async (t) => {
    const own = await startStack(t, { functions: {}, noWorker: true })
    const raw = await sessionV5(t, own.mqttPort, 'v5-shutdown')
    await own.broker.close()
    await raw.closed
    assert.deepEqual(raw.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x8b])
  })
})

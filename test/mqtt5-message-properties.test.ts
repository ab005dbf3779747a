import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sleep, startStack, waitFor } from './helpers/stack.ts'
import { connectV5, received, sessionV5 } from './helpers/mqtt5.ts'

/*
 * MQTT 5.0 PUBLISH properties: forwarded unchanged, Message Expiry on live, queued
 * and retained delivery, and the Payload Format Indicator checked (0x99).
 */

test('MQTT 5 message properties', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const port = stack.mqttPort
  const publisher = await connectV5(port, { clientId: 'mp-publisher' })

  await t.test('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] properties reach the subscriber unchanged', async () => {
    const a = await connectV5(port, { clientId: 'mp-props' })
    const got = received(a)
    await a.subscribeAsync('mp/props', { qos: 1 })
    const properties = {
      payloadFormatIndicator: true,
      contentType: 'application/json; charset=utf-8',
      responseTopic: 'mp/reply/7',
      correlationData: Buffer.from([0x00, 0xff, 0x10]),
      userProperties: { b: 'second', a: ['1', '2'] },
    }
    await publisher.publishAsync('mp/props', '{"n":1}', { qos: 1, properties })
    await waitFor('message', () => got.length === 1)
    const forwarded = got[0]?.properties ?? {}
    // mqtt-packet parses user properties into a null-prototype object
    assert.deepEqual({ ...forwarded, userProperties: { ...(forwarded.userProperties as object) } }, properties)
    // user properties keep their order, repeated names included [MQTT-3.3.2-18]
    assert.deepEqual(Object.keys(got[0]?.properties?.userProperties as object), ['b', 'a'])
  })

  await t.test('[MQTT-3.3.2-6] a live message carries its Message Expiry Interval', async () => {
    const a = await connectV5(port, { clientId: 'mp-expiry-live' })
    const got = received(a)
    await a.subscribeAsync('mp/live', { qos: 1 })
    await publisher.publishAsync('mp/live', 'x', { qos: 1, properties: { messageExpiryInterval: 120 } })
    await waitFor('message', () => got.length === 1)
    const left = got[0]?.properties?.messageExpiryInterval as number
    assert.ok(left >= 118 && left <= 120, `remaining ${left}`)
  })

  await t.test('[MQTT-3.3.2-5] [MQTT-3.3.2-6] a queued message that expired is not sent; a live one arrives with the time it waited deducted', async () => {
    const session = { clean: false, properties: { sessionExpiryInterval: 300 } }
    const a = await connectV5(port, { clientId: 'mp-queued', ...session })
    await a.subscribeAsync('mp/queued', { qos: 1 })
    await new Promise<void>((resolve) => a.end(false, {}, () => resolve()))
    await publisher.publishAsync('mp/queued', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } })
    await publisher.publishAsync('mp/queued', 'long', { qos: 1, properties: { messageExpiryInterval: 60 } })
    await sleep(2_500)
    const raw = await sessionV5(t, port, 'mp-queued', { clean: false, properties: { sessionExpiryInterval: 300 } })
    const first = await raw.packet('publish')
    assert.equal(first.payload.toString(), 'long')
    const left = first.properties?.messageExpiryInterval as number
    assert.ok(left >= 50 && left <= 58, `remaining ${left}: 60 less the ≥ 2.5 s it waited`)
    raw.send({ cmd: 'puback', messageId: first.messageId, reasonCode: 0 })
    await sleep(300)
    assert.deepEqual(raw.packets.filter((p) => p.cmd === 'publish').map((p) => p.payload.toString()), ['long'])
  })

  await t.test('[MQTT-3.3.2-5] a retained message expires: a later subscriber does not get it', async () => {
    await publisher.publishAsync('mp/retained', 'soon gone', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
    await publisher.publishAsync('mp/retained-kept', 'kept', { qos: 1, retain: true, properties: { messageExpiryInterval: 600 } })
    await sleep(2_200)
    const a = await connectV5(port, { clientId: 'mp-retained' })
    const got = received(a)
    await a.subscribeAsync('mp/retained', { qos: 1 })
    await a.subscribeAsync('mp/retained-kept', { qos: 1 })
    await waitFor('the unexpired retained message', () => got.length >= 1)
    await sleep(300)
    assert.deepEqual(got.map((m) => [m.payload, m.retain]), [['kept', true]])
    const left = got[0]?.properties?.messageExpiryInterval as number
    assert.ok(left <= 598 && left >= 590, `remaining ${left}`)
  })

  await t.test('Payload Format Indicator 1 with a payload that is not UTF-8 is refused with 0x99 [MQTT-3.3.2.3.2]', async (t) => {
    const a = await connectV5(port, { clientId: 'mp-pfi-subscriber' })
    const got = received(a)
    await a.subscribeAsync('mp/pfi', { qos: 2 })
    const raw = await sessionV5(t, port, 'mp-pfi')
    const bad = Buffer.from([0x7b, 0xc3, 0x28, 0x7d])
    raw.send({ cmd: 'publish', topic: 'mp/pfi', qos: 1, messageId: 11, payload: bad, retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    const puback = await raw.packet('puback')
    assert.equal(puback.messageId, 11)
    assert.equal(puback.reasonCode, 0x99)
    raw.send({ cmd: 'publish', topic: 'mp/pfi', qos: 2, messageId: 12, payload: bad, retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    const pubrec = await raw.packet('pubrec')
    assert.equal(pubrec.messageId, 12)
    assert.equal(pubrec.reasonCode, 0x99)
    raw.send({ cmd: 'publish', topic: 'mp/pfi', qos: 0, payload: bad, retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    // the same bytes without the indicator, and valid UTF-8 with it, pass
    raw.send({ cmd: 'publish', topic: 'mp/pfi', qos: 1, messageId: 13, payload: bad, retain: false, dup: false })
    raw.send({ cmd: 'publish', topic: 'mp/pfi', qos: 1, messageId: 14, payload: Buffer.from('ünïcode'), retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    await waitFor('two forwarded', () => got.length === 2)
    await sleep(300)
    assert.deepEqual(got.map((m) => m.payload), [bad.toString(), 'ünïcode'])
    assert.deepEqual(raw.packets.filter((p) => p.cmd === 'puback').map((p) => [p.messageId, p.reasonCode]), [[11, 0x99], [13, 0], [14, 0]])
    // refusing a message does not end the session [MQTT-3.3.2.3.2 permits DISCONNECT; we keep it open]
    assert.equal(raw.socket.destroyed, false)
  })
})

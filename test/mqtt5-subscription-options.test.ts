import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startStack, waitFor } from './helpers/stack.ts'
import { connectV5, received, type Received } from './helpers/mqtt5.ts'

/*
 * MQTT 5.0 subscription options (No Local, Retain As Published, Retain Handling) and
 * Subscription Identifiers, with MQTT.js at protocol version 5. "Nothing arrived" is
 * proven with a marker sent after the message in question on the same topic: once
 * the marker is in, anything before it would have been too [MQTT-4.6.0-5].
 */

const payloads = (got: Received[]) => got.map((m) => m.payload)

test('MQTT 5 subscription options', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const port = stack.mqttPort
  const publisher = await connectV5(port, { clientId: 'so-publisher' })
  const marker = async (topic: string, got: Received[]) => {
    await publisher.publishAsync(topic, 'marker', { qos: 1 })
    await waitFor(`marker on ${topic}`, () => got.some((m) => m.payload === 'marker'))
  }

  await t.test('[MQTT-3.8.3-3] No Local: a client does not receive its own messages on that subscription', async () => {
    const a = await connectV5(port, { clientId: 'so-no-local' })
    const got = received(a)
    await a.subscribeAsync('so/nl', { qos: 1, nl: true })
    await a.publishAsync('so/nl', 'own', { qos: 2 })
    await marker('so/nl', got)
    assert.deepEqual(payloads(got), ['marker'])
  })

  for (const [clause, rap] of [['[MQTT-3.3.1-12]', false], ['[MQTT-3.3.1-13]', true]] as const) {
    await t.test(`${clause} Retain As Published ${Number(rap)}: a live message is forwarded with RETAIN ${Number(rap)}`, async () => {
      const a = await connectV5(port, { clientId: `so-rap${Number(rap)}` })
      const got = received(a)
      await a.subscribeAsync(`so/rap${Number(rap)}`, { qos: 1, rap, rh: 2 })
      await publisher.publishAsync(`so/rap${Number(rap)}`, 'live', { qos: 1, retain: true })
      await waitFor('live', () => got.length === 1)
      assert.deepEqual(got.map((m) => [m.payload, m.retain]), [['live', rap]])
    })
  }

  await t.test('Retain Handling 0/1/2 [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]', async (t) => {
    await publisher.publishAsync('so/rh', 'stored', { qos: 1, retain: true })

    await t.test('[MQTT-3.3.1-9] 0: retained messages are sent on every SUBSCRIBE, new or not', async () => {
      const a = await connectV5(port, { clientId: 'so-rh0' })
      const got = received(a)
      await a.subscribeAsync('so/rh', { qos: 1, rh: 0 })
      await a.subscribeAsync('so/rh', { qos: 1, rh: 0 })
      await waitFor('two retained', () => got.length === 2)
      assert.deepEqual(got.map((m) => [m.payload, m.retain]), [['stored', true], ['stored', true]])
    })

    await t.test('[MQTT-3.3.1-10] 1: retained messages only when the subscription is new', async () => {
      const a = await connectV5(port, { clientId: 'so-rh1' })
      const got = received(a)
      await a.subscribeAsync('so/rh', { qos: 1, rh: 1 })
      await waitFor('retained', () => got.length === 1)
      await a.subscribeAsync('so/rh', { qos: 1, rh: 1 })
      await marker('so/rh', got)
      assert.deepEqual(payloads(got), ['stored', 'marker'])
    })

    await t.test('[MQTT-3.3.1-11] 2: no retained messages on SUBSCRIBE', async () => {
      const a = await connectV5(port, { clientId: 'so-rh2' })
      const got = received(a)
      await a.subscribeAsync('so/rh', { qos: 1, rh: 2 })
      await marker('so/rh', got)
      assert.deepEqual(payloads(got), ['marker'])
    })
    // an empty retained message clears the stored one [MQTT-3.3.1-6]
    await publisher.publishAsync('so/rh', '', { qos: 1, retain: true })
  })

  await t.test('[MQTT-3.3.4-3] [MQTT-3.3.4-4] one copy carries the identifiers of every matching subscription', async () => {
    const a = await connectV5(port, { clientId: 'so-ids' })
    const got = received(a)
    await a.subscribeAsync('so/ids/+', { qos: 1, properties: { subscriptionIdentifier: 5 } })
    await a.subscribeAsync('so/ids/#', { qos: 1, properties: { subscriptionIdentifier: 7 } })
    await a.subscribeAsync('so/ids/x', { qos: 1 })
    await a.subscribeAsync('so/other', { qos: 1, properties: { subscriptionIdentifier: 9 } })
    await publisher.publishAsync('so/ids/x', 'm', { qos: 1 })
    await marker('so/ids/x', got)
    assert.deepEqual(got.map((m) => m.payload), ['m', 'marker'])
    const ids = got[0]?.properties?.subscriptionIdentifier
    assert.deepEqual(Array.isArray(ids) ? [...ids].sort() : ids, [5, 7])
  })

  await t.test('[MQTT-3.3.4-3] a single matching subscription sends its one identifier', async () => {
    const a = await connectV5(port, { clientId: 'so-one-id' })
    const got = received(a)
    await a.subscribeAsync('so/one/#', { qos: 1, properties: { subscriptionIdentifier: 42 } })
    await publisher.publishAsync('so/one/a', 'm', { qos: 1 })
    await waitFor('message', () => got.length === 1)
    assert.equal(got[0]?.properties?.subscriptionIdentifier, 42)
  })
})

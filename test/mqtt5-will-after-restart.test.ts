import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { connectV5, received, sessionV5, type Received } from './helpers/mqtt5.ts'
import { sleep, startStack, waitFor, type Stack } from './helpers/stack.ts'

/*
 * A delayed will pending when its broker stops stays in Redis (aedes drops the timer);
 * restarted with the same id, the broker used never to publish it, as aedes' will
 * check skips live brokers. broker/hooks/previous-wills.ts publishes it after its
 * delay, unless its client returns first [MQTT-3.1.3-9].
 */

const will = (topic: string, willDelayInterval: number) => ({ topic, payload: Buffer.from('gone'), qos: 1 as const, retain: false, properties: { willDelayInterval } })
const session = { properties: { sessionExpiryInterval: 300 } }

/** A persistent watcher of wr/#: what arrives while its broker is down waits in its session. */
async function watch(stack: Stack): Promise<{ client: MqttClient; got: Received[] }> {
  const client = await connectV5(stack.mqttPort, { clientId: 'wr-watcher', clean: false, properties: { sessionExpiryInterval: 300 } })
  const got = received(client)
  await client.subscribeAsync('wr/#', { qos: 1 })
  return { client, got }
}

/** Stops the broker while `clientId`'s delayed will is pending, and starts it again with the same id; returns when the start began. */
async function restartWithPendingWill(t: TestContext, stack: Stack, clientId: string, delay: number): Promise<number> {
  const raw = await sessionV5(t, stack.mqttPort, clientId, { ...session, will: will(`wr/${clientId}`, delay) })
  raw.socket.destroy()
  await raw.closed
  await stack.broker.close()
  const restarting = performance.now()
  await stack.restartBroker()
  return restarting
}

test('a delayed will pending at a broker restart', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { persistence: 'redis' } })

  await t.test('[MQTT-3.1.3-9] is published by the restarted broker after its delay, not before', async (t) => {
    const first = await watch(stack)
    first.client.end(true)
    const restarting = await restartWithPendingWill(t, stack, 'wr-left', 2)
    const { got } = await watch(stack)
    await waitFor('the will of wr-left', () => got.some((m) => m.topic === 'wr/wr-left'), 15_000)
    assert.ok(performance.now() - restarting >= 2000, 'not before its 2 s delay, counted from the restart')
    assert.equal(got.filter((m) => m.topic === 'wr/wr-left').length, 1)
  })

  await t.test('[MQTT-3.1.3-9] is not published when its client connects again within the delay', async (t) => {
    const { client } = await watch(stack)
    client.end(true)
    await restartWithPendingWill(t, stack, 'wr-back', 3)
    await sessionV5(t, stack.mqttPort, 'wr-back', { ...session, clean: false })
    const { got } = await watch(stack)
    // past the delay, with room for a loaded machine; a marker proves the watcher is served
    await sleep(5000)
    const marker = await connectV5(stack.mqttPort, { clientId: 'wr-marker' })
    await marker.publishAsync('wr/marker', 'm', { qos: 1 })
    await waitFor('marker', () => got.some((m) => m.topic === 'wr/marker'))
    assert.equal(got.filter((m) => m.topic === 'wr/wr-back').length, 0)
  })
})

test('§3.3.2.3 a will arrives without its Will Delay Interval, which is no PUBLISH property; its message properties are kept', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const watcher = await sessionV5(t, stack.mqttPort, 'wp-watcher')
  watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'wp/#', qos: 1 }] })
  await watcher.packet('suback')
  const dying = await sessionV5(t, stack.mqttPort, 'wp-dying', {
    ...session,
    will: { ...will('wp/gone', 1), properties: { willDelayInterval: 1, contentType: 'text/plain', userProperties: { why: 'test' } } },
  })
  dying.socket.destroy()
  const published = await watcher.packet('publish')
  assert.deepEqual({ ...published.properties, userProperties: { ...published.properties?.userProperties } }, { contentType: 'text/plain', userProperties: { why: 'test' } })
  // on the wire: no property 0x18 anywhere in the packet's properties
  assert.ok(!watcher.bytes().includes(Buffer.from([0x18, 0x00, 0x00, 0x00, 0x01])))
})

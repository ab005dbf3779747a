import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createBroker } from '../broker/broker.ts'
import { createLogger } from '../common/logger.ts'
import { sleep, startStack, unique, waitFor } from './helpers/stack.ts'
import { connectV5, received, sessionV5 } from './helpers/mqtt5.ts'

/*
 * The Will Delay Interval across the brokers of a cluster (MQFN_PERSISTENCE=redis).
 * aedes keeps the delay's timer in the broker the client was connected to; a
 * reconnect to another broker must still cancel the will (broker/hooks/cluster-timers.ts).
 */

test('Will Delay Interval in a cluster', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { persistence: 'redis' } })
  const second = await createBroker({ ...stack.brokerConfig, brokerId: unique('broker-b'), mqttPort: 0, wsPort: 0, adminPort: 0 }, createLogger('test', 'silent'))
  t.after(() => second.close())
  const portA = stack.mqttPort
  const portB = second.listeners.find((l) => l.protocol === 'mqtt')?.port as number
  const watcher = await connectV5(portB, { clientId: 'wd-watcher' })
  const got = received(watcher)
  await watcher.subscribeAsync('wd/#', { qos: 1 })
  const will = (topic: string) => ({ topic, payload: Buffer.from('gone'), qos: 1 as const, retain: false, properties: { willDelayInterval: 2 } })
  const session = { properties: { sessionExpiryInterval: 60 } }

  await t.test('[MQTT-3.1.3-9] a will whose delay ends is published (the timer works on one broker)', async (t) => {
    const raw = await sessionV5(t, portA, 'wd-alone', { ...session, will: will('wd/alone') })
    raw.socket.destroy()
    await waitFor('the will, after its 2 s delay', () => got.some((m) => m.topic === 'wd/alone'), 15_000)
  })

  await t.test('[MQTT-3.1.3-9] a reconnect to another broker within the delay cancels the will', async (t) => {
    const raw = await sessionV5(t, portA, 'wd-moved', { ...session, will: will('wd/moved') })
    raw.socket.destroy()
    await raw.closed
    await sessionV5(t, portB, 'wd-moved', { ...session, clean: false })
    // past the delay, with room for a loaded machine; a marker proves the watcher is served
    await sleep(4_000)
    await connectV5(portA, { clientId: 'wd-marker' }).then((c) => c.publishAsync('wd/marker', 'm', { qos: 1 }))
    await waitFor('marker', () => got.some((m) => m.topic === 'wd/marker'))
    assert.deepEqual(got.filter((m) => m.topic === 'wd/moved').length, 0)
  })
})

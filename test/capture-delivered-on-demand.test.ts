import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { hasDemand } from '../common/event-demand.ts'
import { connect, recorder, startStack, waitFor, type Stack } from './helpers/stack.ts'
import { metric } from './helpers/slow-clients.ts'

const TOKEN = randomBytes(16).toString('hex')

interface Logged { _id: string; type: string; clientId: string; seq: number }

/**
 * A subscriber takes one QoS 1 message, acknowledges it, and leaves; returns the
 * types of its events in the event log, by seq. `delivered` is among them only if
 * the broker captured it, and seq shows there is no gap where it would have been.
 */
async function deliverOne(stack: Stack, subId: string): Promise<string[]> {
  const sub = await connect(stack.mqttPort, { clientId: subId, clean: true })
  await sub.subscribeAsync(`od/${subId}`, { qos: 1 })
  const got = new Promise<void>((resolve) => sub.once('message', () => resolve()))
  const pub = await connect(stack.mqttPort, { clientId: `${subId}-pub` })
  await pub.publishAsync(`od/${subId}`, 'x', { qos: 1 })
  await got
  await pub.endAsync()
  // MQTT.js sends the PUBACK before emitting 'message'; end() closes after it is written
  await sub.endAsync()
  const events = stack.db.collection<Logged>('events')
  const logged = await waitFor(`the events of ${subId} up to clientDisconnected`, async () => {
    const docs = await events.find({ clientId: subId }).sort({ seq: 1 }).toArray()
    return docs.some((d) => d.type === 'clientDisconnected') ? docs : undefined
  }, 30_000)
  assert.deepEqual(logged.map((d) => d.seq), logged.map((_, i) => i + 1), 'seq has no gap')
  return logged.map((d) => d.type)
}

const withoutDelivered = ['clientConnected', 'subscribed', 'clientDisconnecting', 'clientDisconnected']
const withDelivered = ['clientConnected', 'subscribed', 'delivered', 'clientDisconnecting', 'clientDisconnected']

test('auto: no worker handles delivered, so none is captured and seq skips nothing', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': recorder('published') } })
  assert.equal(stack.brokerConfig.captureDelivered, 'auto', 'auto is the default')
  assert.deepEqual(await deliverOne(stack, 'od-none'), withoutDelivered)
})

test('auto: a worker with a delivered handler switches capture on within seconds, and off when it closes', async (t) => {
  const stack = await startStack(t, { functions: { 'delivered.ts': recorder('delivered') }, broker: { adminToken: TOKEN } })
  const redis = new Redis(stack.services.redisUrl)
  t.after(() => redis.disconnect())
  assert.equal(await hasDemand(redis, stack.prefix, 'delivered'), true, 'the worker advertised its handler when it started')
  // the broker asks once a second: deliver until one is captured
  let round = 0
  await waitFor('a delivered event captured', async () => (await deliverOne(stack, `od-on-${++round}`)).includes('delivered'), 30_000, 0)
  assert.deepEqual(await deliverOne(stack, 'od-on-last'), withDelivered)
  // the event log is written before the handler starts: its entry can be there first
  const calls = stack.db.collection('calls')
  await waitFor('the delivered handler ran', async () => (await calls.countDocuments({ type: 'delivered', 'event.clientId': 'od-on-last' })) > 0, 15_000)
  assert.equal(await calls.countDocuments({ type: 'delivered', 'event.clientId': 'od-on-last' }), 1, 'the handler ran for it, once')

  await stack.worker.close()
  // withdrawn by the closing worker, well before its advertisement would expire (15 s)
  await waitFor('the worker withdrew its delivered handler', async () => !(await hasDemand(redis, stack.prefix, 'delivered')), 5000)
  await waitFor('capture off again', async () => {
    const before = await capturedDelivered(stack)
    await deliverAndLeave(stack, 'od-off')
    return (await capturedDelivered(stack)) === before
  }, 30_000, 0)
  const before = await capturedDelivered(stack)
  await deliverAndLeave(stack, 'od-off')
  assert.equal(await capturedDelivered(stack), before, 'stays off')
})

/** The broker's count of captured delivered events, from its /metrics. */
function capturedDelivered(stack: Stack): Promise<number> {
  return metric(stack.broker.adminPort as number, TOKEN, 'mqfn_broker_events_captured_total', { type: 'delivered' })
}

/** One QoS 1 message to itself; returns once the broker has handled the PUBACK and the close. */
async function deliverAndLeave(stack: Stack, clientId: string): Promise<void> {
  const c = await connect(stack.mqttPort, { clientId })
  await c.subscribeAsync(`od/${clientId}`, { qos: 1 })
  const got = new Promise<void>((resolve) => c.once('message', () => resolve()))
  await c.publishAsync(`od/${clientId}`, 'x', { qos: 1 })
  await got
  await c.endAsync()
  // the PUBACK came before the DISCONNECT on the same socket
  await waitFor('the broker saw the client leave', () => (stack.broker.aedes as unknown as { clients: Record<string, unknown> }).clients[clientId] === undefined)
}

test('never: not captured even with a delivered handler loaded; always: captured without one', async (t) => {
  const never = await startStack(t, { functions: { 'delivered.ts': recorder('delivered') }, broker: { captureDelivered: 'never' } })
  assert.deepEqual(await deliverOne(never, 'od-never'), withoutDelivered)
  const always = await startStack(t, { functions: {}, broker: { captureDelivered: 'always' } })
  assert.deepEqual(await deliverOne(always, 'od-always'), withDelivered)
})

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { OUTBOX_QUEUE } from '../common/queues.ts'
import { connect, startStack, waitFor } from './helpers/stack.ts'

const run = promisify(execFile)

const replier = `import { defineHandler } from 'mqtt-functions'
export const config = { topic: 'cmd/+' }
export default defineHandler('published', async (event, ctx) => {
  const name = event.topic.split('/')[1]
  if (name === 'slow') await new Promise((r) => setTimeout(r, 1500))
  await ctx.publish('reply/' + name, Buffer.concat([Buffer.from('re:'), event.payload]), { qos: 1, retain: name === 'slow' })
  await ctx.db.collection('calls').insertOne({ _id: event.id, at: Date.now() })
})
`

test('ctx.publish reaches subscribed devices (MQTT.js and mosquitto_sub)', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': replier } })
  const device = await connect(stack.mqttPort, { clientId: 'device' })
  await device.subscribeAsync('reply/#', { qos: 1 })
  const mosquitto = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(stack.mqttPort), '-t', 'reply/+', '-C', '1', '-v', '-W', '20'])
  await waitFor('mosquitto_sub subscribed', () => stack.broker.aedes.connectedClients === 2)
  const got = new Promise<[string, string]>((resolve) => device.once('message', (topic, payload) => resolve([topic, payload.toString()])))
  await device.publishAsync('cmd/ping', 'hello', { qos: 1 })
  assert.deepEqual(await got, ['reply/ping', 're:hello'])
  assert.equal((await mosquitto).stdout, 'reply/ping re:hello\n')
})

test('a message published while no broker runs is delivered once one is up again', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': replier } })
  const device = await connect(stack.mqttPort, { clientId: 'sender' })
  await device.publishAsync('cmd/slow', 'state', { qos: 1 })
  // the event is in Redis (that is what the PUBACK means); stop the broker before the handler publishes
  await stack.broker.close()
  await waitFor('the handler to finish with the broker down', () => stack.db.collection('calls').findOne({}))
  const redis = new Redis(stack.services.redisUrl)
  const outbox = new Queue(OUTBOX_QUEUE, { connection: redis, prefix: stack.prefix })
  t.after(async () => { await outbox.close(); redis.disconnect() })
  assert.equal(await outbox.getWaitingCount(), 1, 'the message waits in Redis')

  await stack.restartBroker()
  await waitFor('the outbox to drain', async () => (await outbox.getWaitingCount()) === 0 && (await outbox.getActiveCount()) === 0)
  const later = await connect(stack.mqttPort, { clientId: 'later' })
  const got = new Promise<[string, string]>((resolve) => later.once('message', (topic, payload) => resolve([topic, payload.toString()])))
  await later.subscribeAsync('reply/slow', { qos: 1 })
  assert.deepEqual(await got, ['reply/slow', 're:state'])
})

test('a bad ctx.publish call fails the handler with a message naming the problem', async (t) => {
  const bad = `import { defineHandler } from 'mqtt-functions'
export const config = { attempts: 1 }
export default defineHandler('published', async (event, ctx) => {
  if (event.topic === 'bad/wildcard') await ctx.publish('a/+/b', 'x')
  if (event.topic === 'bad/qos') await ctx.publish('a/b', 'x', { qos: 3 as 0 })
  if (event.topic === 'bad/payload') await ctx.publish('a/b', 42 as unknown as string)
})
`
  const stack = await startStack(t, { functions: { 'published.ts': bad } })
  const client = await connect(stack.mqttPort, { clientId: 'bad-publisher' })
  for (const topic of ['bad/wildcard', 'bad/qos', 'bad/payload']) await client.publishAsync(topic, 'x', { qos: 1 })
  const letters = stack.db.collection<{ event: { topic: string }; errors: { message: string }[] }>('deadletters')
  await waitFor('three dead letters', async () => (await letters.countDocuments()) === 3)
  const byTopic = Object.fromEntries((await letters.find().toArray()).map((d) => [d.event.topic, d.errors[0]?.message]))
  assert.deepEqual(byTopic, {
    'bad/wildcard': 'ctx.publish: topic "a/+/b" contains a wildcard; wildcards are for subscriptions [MQTT-3.3.2-2]',
    'bad/qos': 'ctx.publish: qos must be 0, 1 or 2, got 3',
    'bad/payload': 'ctx.publish: payload must be a string, bytes or a JSON object, got number',
  })
})

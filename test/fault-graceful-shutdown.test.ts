import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { EVENT_TYPES } from '../common/event-types.ts'
import { queueName } from '../common/queues.ts'
import { assertNothingLost, COUNTING_HANDLER, startLoad } from './helpers/load.ts'
import { processStack, startWorkerAndBroker } from './helpers/processes.ts'
import { waitFor } from './helpers/stack.ts'

test('SIGTERM to broker and worker under load: both exit 0, no job is left active, nothing is lost', async (t) => {
  const stack = await processStack(t, { 'published.ts': COUNTING_HANDLER })
  const start = () => startWorkerAndBroker(t, stack)
  const first = await start()
  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 1000 })
  await waitFor('handlers at work', async () => (await stack.db.collection('done').countDocuments()) >= 500, 60_000)
  first.broker.kill('SIGTERM')
  first.worker.kill('SIGTERM')
  assert.equal(await first.broker.exited(), 0, first.broker.output().slice(-2000))
  assert.equal(await first.worker.exited(), 0, first.worker.output().slice(-2000))
  assert.match(first.broker.output(), /broker closed/)
  assert.match(first.worker.output(), /worker closed/)

  const redis = new Redis(stack.services.redisUrl, { maxRetriesPerRequest: null })
  const queues = EVENT_TYPES.map((type) => new Queue(queueName(type), { connection: redis, prefix: stack.prefix }))
  t.after(async () => {
    await Promise.all(queues.map((q) => q.close()))
    redis.disconnect()
  })
  const active = await Promise.all(queues.map((q) => q.getActiveCount()))
  assert.deepEqual(active, EVENT_TYPES.map(() => 0), 'no job left active')

  await start()
  await load.done
  await assertNothingLost(stack.db, load, { messages: 4000 })
  // the first broker flushed its closed event before exiting (the second one is still up)
  await waitFor('the closed event', async () => (await stack.db.collection('events').countDocuments({ type: 'closed' })) === 1)
  // disconnect events travel in their own queue: wait for them before counting
  const shutdownDisconnects = () => stack.db.collection('events').countDocuments({ type: 'clientDisconnected', reason: 'shutdown', clientId: { $regex: `^${load.topicPrefix}-c` } })
  await waitFor('the shutdown disconnects', async () => (await shutdownDisconnects()) >= 4, 20_000, 250)
  const disconnects = await shutdownDisconnects()
  assert.equal(disconnects, 4, 'each load client was told why its connection ended')
})

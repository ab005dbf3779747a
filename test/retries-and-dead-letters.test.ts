import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { JOB_BATCH, queueName, type BatchJobData } from '../common/queues.ts'
import { connect, sleep, startStack, waitFor, type Stack } from './helpers/stack.ts'

/** A handler that counts its runs, records attempts, and fails while `failUntil` says so. */
function counting(config: string, failWhen: string): string {
  return `import { defineHandler } from 'mqtt-functions'
export const config = ${config}
export default defineHandler('published', async (event, ctx) => {
  await ctx.db.collection('runs').updateOne({ _id: event.id + '/' + ctx.handler },
    { $inc: { runs: 1 }, $push: { attempts: ctx.attempt } }, { upsert: true })
  if (${failWhen}) throw new Error('failing on attempt ' + ctx.attempt)
})
`
}

interface Run { _id: string; runs: number; attempts: number[] }

/** The published queue of a stack, closed with its connection after the test. */
function batchQueue(t: TestContext, stack: Stack): Queue<BatchJobData> {
  const redis = new Redis(stack.services.redisUrl, { maxRetriesPerRequest: null })
  const queue = new Queue<BatchJobData>(queueName('published'), { connection: redis, prefix: stack.prefix })
  t.after(async () => {
    await queue.close()
    redis.disconnect()
  })
  return queue
}

test('only the failed handler runs again, with backoff, and the event is logged once', async (t) => {
  const stack = await startStack(t, {
    functions: {
      'published/flaky.ts': counting('{ attempts: 3, backoff: 200 }', 'ctx.attempt < 3'),
      'published/steady.ts': counting('{}', 'false'),
    },
  })
  const client = await connect(stack.mqttPort, { clientId: 'retry' })
  await client.publishAsync('r/1', 'x', { qos: 1 })
  const runs = stack.db.collection<Run>('runs')
  const flaky = await waitFor('flaky to succeed', async () => {
    const doc = await runs.findOne({ _id: /\/published\/flaky$/ })
    return doc && doc.runs === 3 ? doc : undefined
  })
  assert.deepEqual(flaky.attempts, [1, 2, 3])
  await sleep(500)
  const steady = await runs.findOne({ _id: /\/published\/steady$/ })
  assert.equal(steady?.runs, 1, 'the handler that succeeded is not run again')
  const eventId = flaky._id.split('/')[0] as string
  assert.equal(await stack.db.collection('events').countDocuments({ _id: eventId } as never), 1)
  assert.equal(await stack.db.collection('events').countDocuments({ type: 'published' }), 1)
  assert.equal(await stack.db.collection('deadletters').countDocuments(), 0)
})

test('a batch processed twice (a redelivered job) leaves one event-log document per event', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': counting('{}', 'false') } })
  const client = await connect(stack.mqttPort, { clientId: 'twice' })
  await client.publishAsync('t/1', 'a', { qos: 1 })
  const first = await waitFor('the first run', () => stack.db.collection<Run>('runs').findOne({}))
  const eventId = first._id.split('/')[0] as string
  const logged = await stack.db.collection('events').findOne({ _id: eventId } as never)
  assert.ok(logged)
  // what a stalled job looks like to a worker: the same batch again
  const event = { id: eventId, type: 'published', ts: (logged.ts as Date).getTime(), brokerId: logged.brokerId, clientId: 'twice',
    epoch: logged.epoch, seq: logged.seq, topic: 't/1', payload: Buffer.from('a').toString('base64'), qos: 1, retain: false, dup: false }
  const queue = batchQueue(t, stack)
  await queue.add(JOB_BATCH, { v: 1, events: [event as never] })
  await waitFor('the second run', async () => (await stack.db.collection<Run>('runs').findOne({}))?.runs === 2)
  assert.equal(await stack.db.collection('events').countDocuments({ type: 'published' }), 1)
})

test('a handler that never succeeds is dead-lettered with every attempt; a bad envelope at once', async (t) => {
  const stack = await startStack(t, {
    functions: {
      'published/broken.ts': counting('{ attempts: 2, backoff: 100 }', 'true'),
      'published/once.ts': counting('{ attempts: 1 }', 'true'),
    },
  })
  const client = await connect(stack.mqttPort, { clientId: 'dead' })
  await client.publishAsync('d/1', 'x', { qos: 1 })
  const letters = stack.db.collection<{ _id: string; handler: string | null; errors: { attempt: number; message: string; stack?: string }[]; event: { topic?: string } }>('deadletters')
  await waitFor('two dead letters', async () => (await letters.countDocuments()) === 2)
  const broken = await letters.findOne({ handler: 'published/broken' })
  assert.deepEqual(broken?.errors.map((e) => [e.attempt, e.message]), [[1, 'failing on attempt 1'], [2, 'failing on attempt 2']])
  assert.match(broken?.errors[1]?.stack ?? '', /failing on attempt 2\n\s+at /)
  assert.equal(broken?.event.topic, 'd/1')
  const once = await letters.findOne({ handler: 'published/once' })
  assert.deepEqual(once?.errors.map((e) => e.attempt), [1])

  const queue = batchQueue(t, stack)
  await queue.add(JOB_BATCH, { v: 1, events: [{ id: 'bad-1', type: 'published', topic: '' } as never] })
  const invalid = await waitFor('the invalid event', () => letters.findOne({ _id: 'bad-1' }))
  assert.equal(invalid.handler, null)
  assert.match(invalid.errors[0]?.message ?? '', /^ts: Invalid input: expected number, received undefined; brokerId: .*; topic: Too small/)
  assert.equal(await stack.db.collection('events').countDocuments({ _id: 'bad-1' } as never), 0)
})

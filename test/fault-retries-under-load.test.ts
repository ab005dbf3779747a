import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startLoad } from './helpers/load.ts'
import { mqfn } from './helpers/processes.ts'
import { startStack, waitFor } from './helpers/stack.ts'

// Inserts, not counters: FerretDB 1.24 scans a collection for every update by _id.
// A second success for one event would hit the duplicate key and be dead-lettered.
// fails its first two attempts at every event, then succeeds
const flaky = `import { defineHandler } from 'mqtt-functions'
export const config = { attempts: 3, backoff: 100 }
export default defineHandler('published', async (event, ctx) => {
  if (ctx.attempt < 3) throw new Error('flaky attempt ' + ctx.attempt)
  await ctx.db.collection('flaky').insertOne({ _id: event.id, attempt: ctx.attempt })
})
`
// the messages of one client, failing while the flag document exists: a bug, fixed by deleting the flag
const broken = `import { defineHandler } from 'mqtt-functions'
export const config = { topic: 'retries/retries-c0', attempts: 2, backoff: 50 }
export default defineHandler('published', async (event, ctx) => {
  if (await ctx.db.collection('flags').findOne({ _id: 'broken' })) throw new Error('bug in broken')
  await ctx.db.collection('fixed').insertOne({ _id: event.id, attempt: ctx.attempt })
})
`

test('under load: a flaky handler succeeds on its third attempt; a broken one is dead-lettered, then retried from the CLI after the fix', async (t) => {
  const stack = await startStack(t, { functions: { 'published/flaky.ts': flaky, 'published/broken.ts': broken }, worker: { concurrency: 16 } })
  await stack.db.collection<{ _id: string }>('flags').insertOne({ _id: 'broken' })
  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 750, topicPrefix: 'retries' })
  await load.done
  assert.equal(load.acked.size, 3000)

  const events = await waitFor('every message in the event log', async () => {
    const n = await stack.db.collection('events').countDocuments({ type: 'published', topic: { $regex: `^${load.topicPrefix}/` } })
    return n >= 3000 ? n : undefined
  }, 60_000, 500)
  const letters = stack.db.collection<{ handler: string; errors: { attempt: number; message: string }[] }>('deadletters')
  const brokenEvents = await stack.db.collection('events').countDocuments({ type: 'published', topic: 'retries/retries-c0' })
  assert.ok(brokenEvents >= 750)
  await waitFor('the broken handler dead-lettered for each of its events', async () => (await letters.countDocuments()) === brokenEvents, 120_000, 500)
  await waitFor('the flaky handler done with every event', async () => (await stack.db.collection('flaky').countDocuments()) === events, 120_000, 500)
  assert.equal(await stack.db.collection('flaky').countDocuments({ attempt: 3 }), events, 'every event succeeded on the third attempt')
  assert.equal(await letters.countDocuments({ handler: 'published/broken', 'errors.1.message': 'bug in broken', errors: { $size: 2 } }), brokenEvents)
  assert.equal(await letters.countDocuments({ handler: 'published/flaky' }), 0)

  await stack.db.collection<{ _id: string }>('flags').deleteOne({ _id: 'broken' })
  const env = {
    REDIS_URL: stack.services.redisUrl, MONGO_URL: stack.services.mongoUrl, MQFN_DATABASE: stack.db.databaseName, MQFN_PREFIX: stack.prefix,
  }
  const retry = mqfn(t, 'dlq', env, ['retry', '--handler', 'published/broken'])
  assert.equal(await retry.exited(), 0, retry.output())
  assert.equal(retry.output().trim(), `re-enqueued ${brokenEvents} dead letters`)
  await waitFor('the dead letters resolved', async () => (await letters.countDocuments()) === 0, 120_000, 500)
  assert.equal(await stack.db.collection('fixed').countDocuments({ attempt: 3 }), brokenEvents, 'each event handled once by the fixed handler, as attempt 3')
})

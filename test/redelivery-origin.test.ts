import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import type { WireEvent } from '../common/events.ts'
import { queueName } from '../common/queues.ts'
import { retryJobId, type DeadLetterDocument } from '../runtime/redelivery/index.ts'
import { startStack, waitFor, type Stack } from './helpers/stack.ts'

/*
 * Replayed events and retried dead letters run outside an ordered handler's live chain,
 * decided by the origin each job carries in its data, and, for jobs an older worker
 * left in Redis, by their `replay~` / `dlq~` ids and `outside` marker. Every event here
 * follows a gap (its `prev` never arrives) and the gap timeout is 10 minutes: an event
 * read as live waits that long, one read as history runs at once.
 */

const ORDERED = `import { defineHandler } from 'mqtt-functions'
export const config = { ordered: true, attempts: 1 }
export default defineHandler('published', async (event, ctx) => {
  if (event.topic.startsWith('slow/')) {
    await ctx.db.collection('started').insertOne({ _id: event.id })
    await new Promise((resolve) => setTimeout(resolve, 3000))
  }
  await ctx.db.collection('runs').updateOne({ _id: event.id }, { $inc: { runs: 1 }, $set: { topic: event.topic } }, { upsert: true })
})
`

let n = 0
/** A published event of its own client (or `client`'s), whose predecessor (seq 9) never came. */
function afterGap(label: string, topic = `origin/${label}`, client?: { clientId: string; epoch: number; seq: number }): Extract<WireEvent, { type: 'published' }> {
  n++
  return {
    id: `${String(n).padStart(9, '0')}-origin00-${label}`, ts: Date.now(), brokerId: 'b', type: 'published', clientId: `client-${label}`, epoch: 1_000_000 + n, seq: 10, prev: 9,
    ...client, topic, payload: Buffer.from(label).toString('base64'), qos: 1, retain: false, dup: false,
  }
}

async function publishedQueue(t: TestContext, stack: Stack): Promise<Queue> {
  const redis = new Redis(stack.services.redisUrl, { maxRetriesPerRequest: null })
  const queue = new Queue(queueName('published'), { connection: redis, prefix: stack.prefix })
  t.after(async () => {
    await queue.close()
    redis.disconnect()
  })
  return queue
}

const RETRY = { attempts: 1, removeOnComplete: true } as const

test('replays and dead-letter retries run outside the ordered chain, by the origin in their data or the ids older workers gave them; live events wait', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': ORDERED }, worker: { orderedGapTimeoutMs: 600_000 } })
  const queue = await publishedQueue(t, stack)
  const live = afterGap('live')
  const history = {
    batchNew: afterGap('batch-new'),
    batchOld: afterGap('batch-old'),
    retryNew: afterGap('retry-new'),
    retryOld: afterGap('retry-old'),
    parkedOld: afterGap('parked-old'),
    dlqNew: afterGap('dlq-new'),
    dlqOld: afterGap('dlq-old'),
  }
  const letters = stack.db.collection<DeadLetterDocument>('deadletters')
  for (const [key, event] of [['dlqNew', history.dlqNew], ['dlqOld', history.dlqOld]] as const) {
    await letters.insertOne({ _id: `${event.id}/published`, eventId: event.id, type: 'published', handler: 'published', event, errors: [{ attempt: 1, at: Date.now(), name: 'Error', message: key }], deadAt: new Date() })
  }
  const errors = [{ attempt: 1, at: Date.now(), name: 'Error', message: 'before' }]
  await queue.addBulk([
    // the broker's capture: no origin
    { name: 'batch', data: { v: 1, events: [live] }, opts: { jobId: 'live.0' } },
    { name: 'batch', data: { v: 1, events: [history.batchNew], origin: 'replay' }, opts: { jobId: 'replay-new.0' } },
    { name: 'batch', data: { v: 1, events: [history.batchOld] }, opts: { jobId: 'replay~old~0' } },
    { name: 'retry', data: { v: 1, event: history.retryNew, handler: 'published', errors: [], origin: 'replay' }, opts: { ...RETRY, jobId: 'retry-new' } },
    { name: 'retry', data: { v: 1, event: history.retryOld, handler: 'published', errors: [] }, opts: { ...RETRY, jobId: `replay~old~${history.retryOld.id}` } },
    { name: 'retry', data: { v: 1, event: history.parkedOld, handler: 'published', errors: [], parkedAt: Date.now(), outside: true }, opts: { ...RETRY, jobId: retryJobId(history.parkedOld.id, 'published') } },
    { name: 'retry', data: { v: 1, event: history.dlqNew, handler: 'published', errors, origin: 'dlq-retry', deadLetterId: `${history.dlqNew.id}/published` }, opts: { ...RETRY, jobId: 'dlq-new' } },
    { name: 'retry', data: { v: 1, event: history.dlqOld, handler: 'published', errors, deadLetterId: `${history.dlqOld.id}/published` }, opts: { ...RETRY, jobId: `dlq~${history.dlqOld.id}~published~old` } },
  ])

  const runs = stack.db.collection<{ _id: string; runs: number; topic: string }>('runs')
  const wanted = Object.values(history).map((e) => e.id).sort()
  await waitFor('every replayed and retried event handled', async () => (await runs.countDocuments({ _id: { $in: wanted } })) === wanted.length, 30_000, 200)
  assert.deepEqual((await runs.find({}).sort({ _id: 1 }).toArray()).map((r) => [r.topic, r.runs]), Object.values(history).sort((a, b) => (a.id < b.id ? -1 : 1)).map((e) => [e.topic, 1]),
    'each history event ran once; the live event did not run')
  await waitFor('both retried dead letters deleted', async () => (await letters.countDocuments()) === 0, 15_000, 200)

  // the live event waits for its predecessor, parked as a delayed retry job that says it is one
  const parked = await waitFor('the live event parked', () => queue.getJob(retryJobId(live.id, 'published')), 15_000, 200)
  assert.equal(await parked.getState(), 'delayed')
  assert.equal(parked.data.origin, 'retry')
  assert.equal(await runs.countDocuments({ _id: live.id }), 0)
})

test('a replayed event parked behind a busy run of its client is not swallowed by an older job of the same pair', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': ORDERED }, worker: { orderedGapTimeoutMs: 600_000 } })
  const queue = await publishedQueue(t, stack)
  const client = { clientId: 'replayed-client', epoch: 2_000_000, seq: 10 }
  const slow = afterGap('slow', 'slow/1', client)
  const next = afterGap('next', 'origin/next', { ...client, seq: 11 })
  // an earlier job of (next, published), as a failed retry kept by BullMQ would be
  await queue.add('retry', { v: 1, event: next, handler: 'published', errors: [], origin: 'retry' }, { jobId: retryJobId(next.id, 'published'), delay: 3_600_000 })
  await queue.add('batch', { v: 1, events: [slow], origin: 'replay' }, { jobId: 'replay-busy.0' })
  await waitFor('the slow replayed run holding its client', () => stack.db.collection('started').findOne({ _id: slow.id as never }), 30_000, 100)
  // a second replay batch of the same client while the first runs: its event finds the client busy and parks
  await queue.add('batch', { v: 1, events: [next], origin: 'replay' }, { jobId: 'replay-busy.1' })
  const runs = stack.db.collection<{ _id: string; runs: number }>('runs')
  await waitFor('both replayed events handled', async () => (await runs.countDocuments({ _id: { $in: [slow.id, next.id] } })) === 2, 30_000, 200)
  assert.deepEqual((await runs.find({}).sort({ _id: 1 }).toArray()).map((r) => [r._id, r.runs]), [[slow.id, 1], [next.id, 1]])
  assert.equal(await (await queue.getJob(retryJobId(next.id, 'published')))?.getState(), 'delayed', 'the older job is still there, untouched')
})

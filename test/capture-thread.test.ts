import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { EventBatcher } from '../broker/capture/batcher.ts'
import { brokersKey, storeKey } from '../broker/capture/capture-store.ts'
import { startCaptureThread } from '../broker/capture/capture-thread-sink.ts'
import { createThreadPump } from '../broker/capture/pump-thread.ts'
import { isMqfnError } from '../common/errors.ts'
import type { WireEvent } from '../common/events.ts'
import { createLogger } from '../common/logger.ts'
import type { BatchJobData } from '../common/queues.ts'
import { connect, recorder, services, sleep, startStack, unique, waitFor } from './helpers/stack.ts'

/*
 * MQFN_CAPTURE_THREAD=all and =pump: the capture thread and the pump thread
 * themselves (real worker threads, real Redis), killed as a crash would end them. The
 * broker's other capture tests run with either on too
 * (`MQFN_CAPTURE_THREAD=all npm test -- test/…`, or `=pump`).
 */

const published = (i: number, qos: 0 | 1): WireEvent => ({
  id: `e${i}`, type: 'published', ts: Date.now(), brokerId: 'thr', clientId: `c${i % 4}`, epoch: 1, seq: i + 1,
  topic: 't', payload: 'AQ==', qos, retain: false, dup: false, ...(qos > 0 ? { messageId: (i % 60000) + 1 } : {}),
})

async function setup(t: TestContext) {
  const svc = await services()
  const prefix = `{${unique('thr')}}`
  const redis = new Redis(svc.redisUrl, { maxRetriesPerRequest: null })
  const queue = new Queue<BatchJobData>('published', { connection: redis, prefix })
  const fatal: Error[] = []
  const sink = await startCaptureThread({
    redisUrl: svc.redisUrl, brokerId: 'thr', prefix, logLevel: 'silent',
    captureMaxJobEvents: 1000, captureMaxJobBytes: 1 << 20, captureMaxBacklogEvents: 100_000, captureMaxBacklogBytes: 1 << 28,
  }, createLogger('test', 'silent'), undefined, (err) => fatal.push(err))
  t.after(async () => {
    await sink.close(1000)
    await queue.close()
    redis.disconnect()
  })
  /** Event ids in the published queue's jobs, with repeats. */
  const queued = async () => (await queue.getJobs(['waiting'])).flatMap((j) => j.data.events.map((e) => e.id))
  return { redis, prefix, sink, fatal, queued }
}

test('a capture thread killed mid-stream loses no event: stored flushes are recovered, the rest go to its successor', async (t) => {
  const { redis, prefix, sink, fatal, queued } = await setup(t)
  const total = 3000
  const acked = new Set<string>()
  const refused: Error[] = []
  for (let i = 0; i < total; i++) {
    // two in three wait for the store, as QoS 1 publishes do; the rest are QoS 0
    const qos = i % 3 === 2 ? 0 : 1
    const id = `e${i}`
    sink.capture(published(i, qos), 200, qos === 1 ? (err) => (err ? refused.push(err) : acked.add(id)) : undefined)
    if (i % 50 === 49) await new Promise((r) => setImmediate(r))
    // killed while flushes are being stored and pumped
    if (i === total / 2) await sink.kill()
  }
  await waitFor('every waiting event stored', () => acked.size + refused.length === 2000, 30_000)
  assert.deepEqual(refused, [], 'no acknowledgement refused: the new thread stored what the old one had not')
  // the old thread's store is recovered once the alive key it renewed expires (10 s) and a sweep finds it (5 s)
  const ids = await waitFor('every event queued', async () => {
    const q = await queued()
    return new Set(q).size === total ? q : undefined
  }, 40_000, 500)
  for (let i = 0; i < total; i++) assert.ok(ids.includes(`e${i}`), `e${i} queued`)
  // a flush the old thread wrote just before it died may be queued again (same event ids); no more than that
  assert.ok(ids.length - total < total / 2, `repeats: ${ids.length - total}`)
  assert.equal(sink.backlog.events, 0, 'nothing held in memory')
  assert.deepEqual(fatal, [], 'one death is restarted, not fatal')
  // the dead thread's tag goes when a sweep finds its alive key expired (≤ 15 s), also
  // when its store was already empty (every flush pumped before it died)
  await waitFor('the dead thread forgotten', async () => (await redis.smembers(brokersKey(prefix))).length === 1 || undefined, 30_000, 500)
  assert.equal(await sink.close(5000), true, 'closes flushed')
  assert.deepEqual(await redis.smembers(brokersKey(prefix)), [], 'every store emptied and forgotten')
})

test('a capture thread that keeps dying stops capture with MQFN_ERR_CAPTURE_THREAD; no waiter is left waiting', async (t) => {
  const { sink, fatal } = await setup(t)
  for (let k = 0; k < 3; k++) {
    await sink.kill()
    await sleep(200)
  }
  assert.deepEqual(fatal, [], 'three deaths within a minute are restarted')
  const outcomes: (Error | null)[] = []
  for (let i = 0; i < 100; i++) sink.capture(published(i, 1), 200, (err) => outcomes.push(err))
  await sink.kill()
  await waitFor('every waiter called', () => outcomes.length === 100, 10_000)
  assert.equal(fatal.length, 1, 'the fourth death is fatal')
  assert.ok(isMqfnError(fatal[0], 'MQFN_ERR_CAPTURE_THREAD'), String(fatal[0]))
  assert.match((fatal[0] as Error).message, /4 times within 60 s; not restarted/)
  // each waiter either stored before the death or refused with the code: never both, never neither
  for (const err of outcomes) assert.ok(err === null || isMqfnError(err, 'MQFN_ERR_CAPTURE_THREAD'), String(err))
  const late: (Error | null)[] = []
  sink.capture(published(101, 1), 200, (err) => late.push(err))
  assert.equal(late.length, 1, 'a capture after it gave up is refused at once')
  assert.equal(await sink.close(1000), false, 'close says capture did not flush')
})

test('a pump thread killed mid-stream: its writes are retried on a new thread, every event queued exactly once', async (t) => {
  const svc = await services()
  const prefix = `{${unique('pthr')}}`
  const redis = new Redis(svc.redisUrl, { maxRetriesPerRequest: null })
  const queue = new Queue<BatchJobData>('published', { connection: redis, prefix })
  const log = createLogger('test', 'silent')
  const pump = await createThreadPump({ redisUrl: svc.redisUrl, brokerId: 'pthr', prefix, tag: 'pthr.1', storeKey: storeKey(prefix, 'pthr.1'), maxJobEvents: 1000, maxJobBytes: 1 << 20 }, log)
  const batcher = new EventBatcher({ redis, pump, prefix, tag: 'pthr.1', storeKey: storeKey(prefix, 'pthr.1'), log, maxJobEvents: 1000, maxJobBytes: 1 << 20, maxBacklogEvents: 100_000, maxBacklogBytes: 1 << 28 })
  t.after(async () => {
    await batcher.close()
    await queue.close()
    redis.disconnect()
  })
  const total = 3000
  const outcomes: (Error | null)[] = []
  for (let i = 0; i < total; i++) {
    const qos = i % 3 === 2 ? 0 : 1
    batcher.capture(published(i, qos), 200, qos === 1 ? (err) => outcomes.push(err) : undefined)
    if (i % 50 === 49) await sleep(1)
    if (i % 1000 === 500) await pump.kill()
  }
  await waitFor('every waiting event stored', () => outcomes.length === 2000, 30_000)
  assert.ok(outcomes.every((err) => err === null), 'every acknowledgement went out: the store is on this thread')
  await waitFor('everything queued', () => batcher.backlog.events === 0, 30_000)
  const ids = (await queue.getJobs(['waiting'])).flatMap((j) => j.data.events.map((e) => e.id))
  assert.equal(ids.length, total, 'each event once: a retried write makes the same job ids')
  assert.equal(new Set(ids).size, total)
  assert.equal(await redis.hlen(storeKey(prefix, 'pthr.1')), 0, 'every stored flush left the store with its jobs')
})

test('MQFN_CAPTURE_THREAD=all: QoS 1 publishes reach their handler through the thread, whose connection is its own', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': recorder('published') }, broker: { captureThread: 'all' } })
  const client = await connect(stack.mqttPort, { clientId: 'thread-pub' })
  t.after(() => client.endAsync())
  for (let i = 0; i < 20; i++) await client.publishAsync('thread/t', `m${i}`, { qos: 1 })
  const calls = stack.db.collection('calls')
  await waitFor('20 published events handled', async () => (await calls.countDocuments({ type: 'published' })) === 20, 30_000, 250)
  const redis = new Redis(stack.services.redisUrl)
  t.after(() => redis.disconnect())
  const names = (await redis.client('LIST') as string).split('\n').map((l) => /name=(\S*)/.exec(l)?.[1])
  assert.ok(names.includes(`mqfn-broker-capture:${stack.brokerConfig.brokerId}`), 'the thread writes on a connection of its own')
})

import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Queue } from 'bullmq'
import { createRedis } from '../common/redis.ts'
import { concurrencyFor, loadWorkerConfig } from '../runtime/config.ts'
import { startLoad, type Load } from './helpers/load.ts'
import { mqfn, processStack, ready, type MqfnProcess, type ProcessStack } from './helpers/processes.ts'
import { connect, waitFor } from './helpers/stack.ts'

/** Events per batch job and batch jobs per worker at once: their product bounds what a killed worker had in flight. */
const JOB_EVENTS = 50
const CONCURRENCY = 4

// One document per (event, handler), by insert; a second run of the same pair cannot
// insert (duplicate _id) and is recorded in `dups` instead.
const RECORDER = (event: string) => `import { defineHandler } from 'mqtt-functions'
export default defineHandler('${event}', async (event, ctx) => {
  const doc = { _id: event.id + '/' + ctx.handler, eventId: event.id, handler: ctx.handler, type: event.type, pid: process.pid }
  try {
    await ctx.db.collection('runs').insertOne(doc)
  } catch (err) {
    if (err.code !== 11000) throw err
    await ctx.db.collection('dups').insertOne({ run: doc._id, pid: process.pid })
  }
})
`

interface Run { _id: string; eventId: string; handler: string; type: string; pid: number }

async function pool(t: TestContext, workers: number, env: NodeJS.ProcessEnv = {}): Promise<{ stack: ProcessStack; workers: MqfnProcess[] }> {
  const stack = await processStack(t, { 'published/a.ts': RECORDER('published'), 'published/b.ts': RECORDER('published') })
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_CAPTURE_MAX_JOB_EVENTS: String(JOB_EVENTS) }))
  await ready(broker, 'broker ready')
  const procs = Array.from({ length: workers }, () => mqfn(t, 'worker', stack.workerEnv({ MQFN_CONCURRENCY: String(CONCURRENCY), ...env })))
  await Promise.all(procs.map((p) => ready(p, 'worker ready')))
  return { stack, workers: procs }
}

/** Waits until every logged event of the load has a run of both handlers; returns the logged event ids. */
async function everyEventHandled(stack: ProcessStack, load: Load): Promise<string[]> {
  const events = stack.db.collection<{ _id: string }>('events')
  const filter = { type: 'published', topic: { $regex: `^${load.topicPrefix}/` } }
  await waitFor('every acknowledged message logged and handled by both handlers', async () => {
    const n = await events.countDocuments(filter)
    return n >= load.acked.size && (await stack.db.collection('runs').countDocuments()) === 2 * n
  }, 180_000, 500)
  const logged = await events.find(filter).project<{ _id: string; payload: { buffer: Uint8Array } }>({ payload: 1 }).toArray()
  const payloads = new Set(logged.map((e) => Buffer.from(e.payload.buffer).toString()))
  assert.deepEqual([...load.acked].filter((id) => !payloads.has(id)), [], 'acknowledged messages missing from the event log')
  return logged.map((e) => e._id)
}

function assertEachOncePerHandler(runs: Run[], eventIds: string[]): void {
  const expected = eventIds.flatMap((id) => [`${id}/published/a`, `${id}/published/b`]).sort()
  assert.deepEqual(runs.map((r) => r._id).sort(), expected, 'a run of each handler for each logged event')
}

test('three workers share one queue: every event handled exactly once per handler, by all three', async (t) => {
  // a long lock: no live worker's batch may be taken for stalled on a busy machine
  const { stack, workers } = await pool(t, 3, { MQFN_LOCK_DURATION_MS: '30000' })
  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 750 })
  await load.done
  assert.equal(load.acked.size, 3000, 'every message acknowledged')
  const eventIds = await everyEventHandled(stack, load)
  assert.equal(eventIds.length, 3000, 'one logged event per message (no client resent)')
  const runs = await stack.db.collection<Run>('runs').find({}).toArray()
  assertEachOncePerHandler(runs, eventIds)
  assert.equal(await stack.db.collection('dups').countDocuments(), 0, 'no (event, handler) ran twice')
  const perPid = new Map<number, number>()
  for (const r of runs) perPid.set(r.pid, (perPid.get(r.pid) ?? 0) + 1)
  t.diagnostic(`runs per worker: ${[...perPid.values()].join(', ')}`)
  assert.deepEqual([...perPid.keys()].sort(), workers.map((w) => w.pid as number).sort(), 'each of the three workers handled some')
})

test('a worker of three killed mid-load: the other two finish; only its in-flight batches run twice', async (t) => {
  const { stack, workers } = await pool(t, 3, { MQFN_LOCK_DURATION_MS: '5000' })
  const [victim, ...survivors] = workers as [MqfnProcess, ...MqfnProcess[]]
  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 1500 })
  const runsOf = stack.db.collection<Run>('runs')
  await waitFor('the victim to be busy', async () => (await runsOf.countDocuments({ pid: victim.pid as number })) >= 300, 120_000, 500)
  victim.kill('SIGKILL')
  assert.equal(await victim.exited(), null, 'killed, not exited')
  await load.done
  assert.equal(load.acked.size, 6000, 'every message acknowledged')
  const eventIds = await everyEventHandled(stack, load)
  const runs = await runsOf.find({}).toArray()
  assertEachOncePerHandler(runs, eventIds)

  // The victim had at most CONCURRENCY batch jobs of this queue active, each of at most
  // JOB_EVENTS events; only those jobs stall and run again, so a second run is of a pair
  // the victim ran first, at most once more each, at most CONCURRENCY × JOB_EVENTS events.
  const dups = await stack.db.collection<{ run: string; pid: number }>('dups').find({}).toArray()
  const firstBy = new Map(runs.map((r) => [r._id, r.pid]))
  t.diagnostic(`duplicates: ${dups.length} (bound ${CONCURRENCY * JOB_EVENTS * 2})`)
  assert.equal(new Set(dups.map((d) => d.run)).size, dups.length, 'no pair ran more than twice')
  assert.ok(new Set(dups.map((d) => d.run.split('/')[0])).size <= CONCURRENCY * JOB_EVENTS, 'duplicated events fit in the victim\'s in-flight batches')
  for (const d of dups) {
    assert.equal(firstBy.get(d.run), victim.pid, `${d.run}: first run by the killed worker`)
    assert.ok(survivors.some((s) => s.pid === d.pid), `${d.run}: second run by a survivor`)
  }
  const survivorRuns = runs.filter((r) => r.pid !== victim.pid)
  assert.ok(survivors.every((s) => survivorRuns.some((r) => r.pid === s.pid)), 'both survivors handled some')
})

const ROUTED = {
  'published.ts': RECORDER('published'),
  'clientConnected.ts': RECORDER('clientConnected'),
  'clientDisconnected.ts': RECORDER('clientDisconnected'),
  'subscribed.ts': RECORDER('subscribed'),
}

test('--events picks the queues: a published worker takes only published, a connect/disconnect pool only those', async (t) => {
  const stack = await processStack(t, ROUTED)
  const broker = mqfn(t, 'broker', stack.brokerEnv())
  await ready(broker, 'broker ready')
  // the flags win over the environment
  const published = mqfn(t, 'worker', stack.workerEnv({ MQFN_EVENTS: 'subscribed', MQFN_CONCURRENCY: '7' }), ['--events', 'published', '--concurrency', 'published=2,*=5'])
  const presence = [1, 2].map(() => mqfn(t, 'worker', stack.workerEnv(), ['--events', 'clientConnected,clientDisconnected']))
  await Promise.all([published, ...presence].map((p) => ready(p, 'worker ready')))
  assert.match(published.output(), /"events":\["published"\],"held":\[\],"concurrency":\{"published":2,"\*":5\}/)

  for (let i = 0; i < 6; i++) {
    const client = await connect(stack.mqttPort, { clientId: `routed-${i}` })
    await client.subscribeAsync(`routed/${i}`, { qos: 1 })
    for (let m = 0; m < 5; m++) await client.publishAsync(`routed/${i}/x`, `m${m}`, { qos: 1 })
    await client.endAsync()
  }
  const runs = stack.db.collection<Run>('runs')
  await waitFor('30 published, 6 connected, 6 disconnected handled', async () =>
    (await runs.countDocuments({ type: 'published' })) === 30 &&
    (await runs.countDocuments({ type: 'clientConnected' })) === 6 &&
    (await runs.countDocuments({ type: 'clientDisconnected' })) === 6, 60_000, 300)
  const all = await runs.find({}).toArray()
  assert.deepEqual(new Set(all.filter((r) => r.type === 'published').map((r) => r.pid)), new Set([published.pid]))
  const presencePids = new Set(presence.map((p) => p.pid))
  assert.ok(all.filter((r) => r.type !== 'published').every((r) => presencePids.has(r.pid)), 'connect/disconnect events only on their pool')
  assert.equal(all.filter((r) => r.type === 'subscribed').length, 0, 'no worker takes subscribed')

  const connection = createRedis(stack.services.redisUrl, 'test')
  t.after(() => connection.quit())
  const subscribed = new Queue('subscribed', { connection, prefix: stack.prefix })
  t.after(() => subscribed.close())
  const counts = await subscribed.getJobCounts('waiting', 'active', 'completed')
  assert.ok((counts.waiting ?? 0) >= 1 && counts.active === 0 && counts.completed === 0, `subscribed stays queued: ${JSON.stringify(counts)}`)
  assert.equal(await stack.db.collection('events').countDocuments({ type: 'subscribed' }), 0, 'nothing logged from an unconsumed queue')
})

test('worker settings: per-event concurrency, flags over environment, and clear errors', () => {
  const spec = loadWorkerConfig({ env: { MQFN_CONCURRENCY: 'published=16,*=4' } }).concurrency
  assert.equal(concurrencyFor(spec, 'published'), 16)
  assert.equal(concurrencyFor(spec, 'delivered'), 4)
  assert.equal(loadWorkerConfig({ env: { MQFN_CONCURRENCY: '8' } }).concurrency, 8)
  assert.equal(concurrencyFor(loadWorkerConfig({ env: { MQFN_CONCURRENCY: 'published=2' } }).concurrency, 'ready'), 32, 'unnamed events keep the default')
  const flagged = loadWorkerConfig({ env: { MQFN_EVENTS: 'subscribed', MQFN_CONCURRENCY: '3' }, overrides: { events: 'published,delivered', concurrency: '9' } })
  assert.deepEqual(flagged.events, ['published', 'delivered'])
  assert.equal(flagged.concurrency, 9)
  assert.throws(() => loadWorkerConfig({ env: { MQFN_CONCURRENCY: 'published=0' } }), {
    code: 'MQFN_ERR_CONFIG',
    message: 'Invalid configuration: concurrency (env MQFN_CONCURRENCY): published: expected a positive integer, got "0" (got "published=0")',
  })
  assert.throws(() => loadWorkerConfig({ env: { MQFN_CONCURRENCY: 'publishd=3' } }), /concurrency \(env MQFN_CONCURRENCY\): unknown event "publishd"/)
  assert.throws(() => loadWorkerConfig({ env: {}, overrides: { events: 'published,bogus' } }), /events \(env MQFN_EVENTS\): unknown event "bogus"/)
})

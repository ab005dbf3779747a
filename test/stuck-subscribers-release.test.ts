import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Socket } from 'node:net'
import { assertNothingLost, COUNTING_HANDLER, startLoad } from './helpers/load.ts'
import { mqfn, processStack, ready } from './helpers/processes.ts'
import { adminPortOf, metric, stuckSubscriber } from './helpers/slow-clients.ts'
import { sleep, waitFor } from './helpers/stack.ts'

/*
 * Issue 14 item 5: when stuck subscribers went away, aedes 1.2 and mqemitter released
 * their backlog recursively and the broker died of "Maximum call stack size exceeded".
 * Now no backlog forms in the emitter (patch aedes …+003+flow-outbound-queue) and the
 * emitter releases in a loop (patch mqemitter …+001+flow-flat-release).
 */

const TOKEN = 'stuck-subscribers-test-token-0123456789'
const STUCK = 100

test(`${STUCK} stuck subscribers disconnecting at once under full-speed QoS 1 load: the broker lives, every acknowledged message is in the event log, drops are summarised per client and second`, async (t) => {
  const stack = await processStack(t, { 'published.ts': COUNTING_HANDLER })
  const worker = mqfn(t, 'worker', stack.workerEnv())
  // small queues so that every stuck client overflows many times within the test
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_ADMIN_TOKEN: TOKEN, MQFN_MAX_QUEUED_MESSAGES_PER_CLIENT: '200' }))
  await Promise.all([ready(worker, 'worker ready'), ready(broker, 'broker ready')])
  const adminPort = adminPortOf(broker)

  const topicPrefix = `rel${Date.now()}`
  const stuck: Socket[] = []
  for (let i = 0; i < STUCK; i++) stuck.push(await stuckSubscriber(stack.mqttPort, `stuck-${i}`, `${topicPrefix}/#`))
  t.after(() => stuck.forEach((s) => s.destroy()))

  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 1500, topicPrefix })
  await waitFor('a third of the messages acknowledged', () => load.acked.size >= 2000, 60_000)
  // all at once, mid-load
  for (const s of stuck) s.destroy()
  await load.done
  await sleep(1500)
  assert.equal(broker.exitCode, null, `the broker lives:\n${broker.output().slice(-3000)}`)
  assert.doesNotMatch(broker.output(), /RangeError|Maximum call stack/)
  await assertNothingLost(stack.db, load, { messages: 6000 })

  // every drop counted, and reported as one clientError per client and second with its count
  const dropped = await metric(adminPort, TOKEN, 'mqfn_broker_messages_dropped_total')
  assert.ok(dropped > 0, 'drops counted')
  const events = stack.db.collection<{ clientId: string; ts: number; reason?: string; count?: number }>('events')
  const filter = { type: 'clientError', reason: 'limit-exceeded', clientId: { $regex: '^stuck-' } }
  await waitFor('the drop summaries in the event log', async () => {
    const sums = await events.find(filter).toArray()
    return sums.reduce((n, e) => n + (e.count ?? 0), 0) === dropped
  }, 60_000, 500)
  const summaries = await events.find(filter).toArray()
  const perClientSecond = new Map<string, number>()
  for (const e of summaries) {
    const key = `${e.clientId}@${Math.floor(e.ts / 1000)}`
    perClientSecond.set(key, (perClientSecond.get(key) ?? 0) + 1)
  }
  // one reason (queue-full-oldest) per summary here; a timer tick may straddle a second boundary
  assert.ok(Math.max(...perClientSecond.values()) <= 2, 'at most one summary per client and second')
  assert.ok(summaries.length < dropped / 10, `${summaries.length} summaries for ${dropped} drops`)
  t.diagnostic(`${dropped} messages dropped for ${STUCK} stuck clients, ${summaries.length} summary events`)

  broker.kill('SIGTERM')
  worker.kill('SIGTERM')
  assert.equal(await broker.exited(), 0)
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { DeadLetterDocument } from '../runtime/redelivery/index.ts'
import { connect, sleep, startStack, waitFor } from './helpers/stack.ts'

/*
 * The attempts that travel to a handler's thread in one message share one timer, and
 * ctx.signal is made on first read (docs/performance.md, "Worker CPU per event"). What
 * docs/handlers.md promises must still hold for each attempt on its own: at its
 * `timeout` it fails with `timeout` and its ctx.signal is aborted with that error,
 * whether the handler read the signal before the timeout or only after it; an attempt
 * of the same message that finishes in time is not touched.
 */

const WAITS = `import { defineHandler } from 'mqtt-functions'
export const config = { topic: 'wait/#', timeout: 300, attempts: 1 }
export default defineHandler('published', async (event, ctx) => {
  const record = (how: string) => ctx.db.collection('signals').insertOne({
    _id: event.topic as never, how, aborted: ctx.signal.aborted,
    reason: (ctx.signal.reason as { code?: string } | undefined)?.code ?? null,
  })
  if (event.topic === 'wait/listens') {
    // reads the signal at once and waits for its abort
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))
    await record('listened')
  } else if (event.topic === 'wait/late') {
    // first reads the signal after its timeout (well within the 1 s grace)
    await new Promise((resolve) => setTimeout(resolve, 600))
    await record('read late')
  } else {
    await record('quick')
  }
})
`

test('each attempt of a message times out on its own: its ctx.signal aborted with the timeout error, read before or after; the quick one untouched', async (t) => {
  const stack = await startStack(t, { functions: { 'published/waits.ts': WAITS } })
  const client = await connect(stack.mqttPort, { clientId: 'signal-reader' })
  t.after(() => client.endAsync())
  // published back to back: they normally share a batch job, so one message to the thread
  await Promise.all(['wait/listens', 'wait/late', 'wait/quick'].map((topic) => client.publishAsync(topic, 'x', { qos: 1 })))

  const signals = stack.db.collection<{ _id: string; how: string; aborted: boolean; reason: string | null }>('signals')
  await waitFor('all three attempts recorded', async () => (await signals.countDocuments()) === 3, 30_000, 100)
  assert.deepEqual(await signals.find().sort({ _id: 1 }).toArray(), [
    { _id: 'wait/late', how: 'read late', aborted: true, reason: 'MQFN_ERR_HANDLER_TIMEOUT' },
    { _id: 'wait/listens', how: 'listened', aborted: true, reason: 'MQFN_ERR_HANDLER_TIMEOUT' },
    { _id: 'wait/quick', how: 'quick', aborted: false, reason: null },
  ])

  const letters = stack.db.collection<DeadLetterDocument>('deadletters')
  await waitFor('both late attempts dead-lettered', async () => (await letters.countDocuments()) === 2, 30_000, 100)
  // nothing more arrives for the quick one
  await sleep(500)
  const dead = await letters.find().toArray()
  assert.equal(dead.length, 2)
  for (const letter of dead) {
    assert.equal(letter.handler, 'published/waits')
    assert.equal(letter.errors.length, 1)
    assert.equal(letter.errors[0]?.message, 'Handler "published/waits" timeout: still running after 300 ms')
  }
  assert.deepEqual(dead.map((d) => (d.event as { topic?: string }).topic).sort(), ['wait/late', 'wait/listens'])
})

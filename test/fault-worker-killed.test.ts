import assert from 'node:assert/strict'
import { test } from 'node:test'
import { assertNothingLost, COUNTING_HANDLER, startLoad } from './helpers/load.ts'
import { mqfn, ready, workerEnv } from './helpers/processes.ts'
import { startStack, waitFor } from './helpers/stack.ts'

test('a worker killed with SIGKILL mid-load loses nothing: a second worker finishes the work', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': COUNTING_HANDLER }, noWorker: true })
  const first = mqfn(t, 'worker', workerEnv(stack))
  await ready(first, 'worker ready')

  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 1000 })
  await waitFor('the first worker to be busy', async () => (await stack.db.collection('done').countDocuments()) >= 400, 60_000)
  first.kill('SIGKILL')
  assert.equal(await first.exited(), null, 'killed, not exited')
  const handledBefore = await stack.db.collection('done').countDocuments()

  const second = mqfn(t, 'worker', workerEnv(stack))
  await ready(second, 'worker ready')
  await load.done
  const { events } = await assertNothingLost(stack.db, load, { messages: 4000 })
  assert.ok(events >= 4000)
  assert.ok(handledBefore < events, 'the second worker did part of the work')
  second.kill('SIGTERM')
  assert.equal(await second.exited(), 0)
})

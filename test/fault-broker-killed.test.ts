import { test } from 'node:test'
import { assertNothingLost, COUNTING_HANDLER, startLoad } from './helpers/load.ts'
import { mqfn, processStack, ready } from './helpers/processes.ts'
import { waitFor } from './helpers/stack.ts'
import assert from 'node:assert/strict'

test('a broker killed with SIGKILL mid-load loses no acknowledged message; clients resend the rest', async (t) => {
  const stack = await processStack(t, { 'published.ts': COUNTING_HANDLER })
  const worker = mqfn(t, 'worker', stack.workerEnv())
  const first = mqfn(t, 'broker', stack.brokerEnv())
  await Promise.all([ready(worker, 'worker ready'), ready(first, 'broker ready')])

  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 1000 })
  await waitFor('a quarter of the messages acknowledged', () => load.acked.size >= 1000, 60_000)
  first.kill('SIGKILL')
  assert.equal(await first.exited(), null)
  const ackedAtKill = load.acked.size
  assert.ok(ackedAtKill < 4000, 'killed mid-load')

  // same port: the clients reconnect (clean session off) and resend what had no PUBACK
  const second = mqfn(t, 'broker', stack.brokerEnv())
  await ready(second, 'broker ready')
  await load.done
  await assertNothingLost(stack.db, load, { messages: 4000 })
  second.kill('SIGTERM')
  worker.kill('SIGTERM')
  assert.equal(await second.exited(), 0)
  assert.equal(await worker.exited(), 0)
})

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startFerretdb } from '../scripts/services.ts'
import { assertNothingLost, COUNTING_HANDLER, startLoad } from './helpers/load.ts'
import { processStack, startWorkerAndBroker } from './helpers/processes.ts'
import { services, sleep, waitFor } from './helpers/stack.ts'

test('the MongoDB-compatible server stopped for seconds mid-load: handlers wait it out, nothing is dead-lettered or lost', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-ferret-'))
  let mongo = await startFerretdb(dir)
  const shared = await services()
  const stack = await processStack(t, { 'published.ts': COUNTING_HANDLER }, { ...shared, mongoUrl: `mongodb://127.0.0.1:${mongo.port}/` })
  // after hooks run in the order they were added: the server goes after the stack that uses it
  t.after(async () => {
    await mongo.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const { worker, broker } = await startWorkerAndBroker(t, stack)

  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 1000 })
  await waitFor('handlers at work', async () => (await stack.db.collection('done').countDocuments()) >= 300, 60_000)
  await mongo.stop('SIGKILL')
  await sleep(5000)
  assert.equal(worker.exitCode, null, 'the worker keeps running')
  mongo = await startFerretdb(dir, mongo.port)
  await load.done
  /*
   * In about one run in three the handlers' inserts made just before the kill hang
   * until their 30 s timeout, and the retries of some hang once more: the queue
   * drains ~60 s after the restart instead of ~3 s (seen on this machine: 3 / 3 / 58 s;
   * in CI it passed 120 s). Not a loss, and not the driver alone (a bare MongoClient
   * resumes 0.5 s after the restart); cause not found yet. The bound leaves room for it.
   */
  await assertNothingLost(stack.db, load, { messages: 4000, deadLetters: 0 }, 240_000)
  broker.kill('SIGTERM')
  worker.kill('SIGTERM')
  assert.equal(await broker.exited(), 0)
  assert.equal(await worker.exited(), 0, worker.output().slice(-2000))
})

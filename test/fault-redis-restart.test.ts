import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startRedis } from '../scripts/services.ts'
import { assertNothingLost, COUNTING_HANDLER, startLoad } from './helpers/load.ts'
import { processStack, startWorkerAndBroker } from './helpers/processes.ts'
import { services, sleep, waitFor } from './helpers/stack.ts'

test('redis-server stopped mid-load and restarted on its port: acknowledgements wait, nothing is lost, nobody exits', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-redis-'))
  // AOF with fsync on every write: what production should run
  let redis = await startRedis({ dir, fsync: 'always' })
  const shared = await services()
  const stack = await processStack(t, { 'published.ts': COUNTING_HANDLER }, { ...shared, redisUrl: `redis://127.0.0.1:${redis.port}` })
  // after hooks run in the order they were added: the server goes after the stack that uses it
  t.after(async () => {
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const { worker, broker } = await startWorkerAndBroker(t, stack)

  const load = startLoad({ port: stack.mqttPort, clients: 4, perClient: 1000 })
  await waitFor('a quarter of the messages acknowledged', () => load.acked.size >= 1000, 60_000)
  await redis.stop('SIGKILL')
  const ackedAtStop = load.acked.size
  await sleep(3000)
  // nothing can be acknowledged while Redis is away (a few PUBACKs already on the wire may land)
  assert.ok(load.acked.size - ackedAtStop < 250, `acknowledged during the outage: ${load.acked.size - ackedAtStop}`)
  assert.equal(broker.exitCode, null, 'the broker keeps running')
  assert.equal(worker.exitCode, null, 'the worker keeps running')

  redis = await startRedis({ dir, fsync: 'always', port: redis.port })
  await load.done
  await assertNothingLost(stack.db, load, { messages: 4000 })
  broker.kill('SIGTERM')
  worker.kill('SIGTERM')
  assert.equal(await broker.exited(), 0, broker.output().slice(-2000))
  assert.equal(await worker.exited(), 0, worker.output().slice(-2000))
})

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startRedis } from '../scripts/services.ts'
import { connect, sleep, startStack, waitFor } from './helpers/stack.ts'

test('with Redis down, QoS 0 publishers are held back at the backlog bound, and nothing is dropped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-redis-'))
  let redis = await startRedis({ dir, fsync: 'always' })
  const redisUrl = `redis://127.0.0.1:${redis.port}`
  const bound = 200
  const stack = await startStack(t, {
    functions: {},
    broker: { redisUrl, captureMaxBacklogEvents: bound },
    worker: { redisUrl },
  })
  // after hooks run in the order they were added: Redis goes after the stack that uses it
  t.after(async () => {
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const client = await connect(stack.mqttPort, { clientId: 'flood' })
  await redis.stop('SIGKILL')

  const total = 20_000
  const payload = Buffer.alloc(1000, 7)
  for (let i = 0; i < total; i++) client.publish('flood/x', payload, { qos: 0 })
  await sleep(3000)
  const held = stack.broker.backlog().events
  const queued = (client.stream as { writableLength: number }).writableLength
  redis = await startRedis({ dir, fsync: 'always', port: redis.port })

  // the broker reads no further than the socket chunk it is in (64 KiB) past the bound
  assert.ok(held <= bound + 70, `events held in memory: ${held}`)
  // the rest waited on the publisher's side of the connection: TCP backpressure
  assert.ok(queued > 10_000_000, `bytes the publisher could not send yet: ${queued}`)
  await waitFor('every QoS 0 event in the event log', async () =>
    (await stack.db.collection('events').countDocuments({ type: 'published', clientId: 'flood' })) === total, 120_000, 500)
})

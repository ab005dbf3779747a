import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { freePort, startRedis } from '../scripts/services.ts'
import { mqfn, ready } from './helpers/processes.ts'
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

test('SIGTERM while Redis is unreachable: the broker gives up flushing after its timeout, says so, and exits 1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-redis-'))
  const redis = await startRedis({ dir })
  t.after(() => rm(dir, { recursive: true, force: true }))
  const port = await freePort()
  const broker = mqfn(t, 'broker', {
    REDIS_URL: `redis://127.0.0.1:${redis.port}`, MQFN_MQTT_PORT: String(port), MQFN_WS_ENABLED: 'false', MQFN_HOST: '127.0.0.1',
    MQFN_SHUTDOWN_FLUSH_TIMEOUT_MS: '1500',
  })
  await ready(broker, 'broker ready')
  await redis.stop('SIGKILL')
  const client = await connect(port, { clientId: 'late' })
  client.publish('lost/x', 'qos0', { qos: 0 })
  await sleep(300)
  const started = Date.now()
  broker.kill('SIGTERM')
  assert.equal(await broker.exited(), 1)
  assert.ok(Date.now() - started < 15_000, 'bounded')
  assert.match(broker.output(), /shutdown: Redis did not take the captured events in time; they are lost \(QoS 1\/2 ones were not acknowledged\)/)
  assert.match(broker.output(), /mqfn broker: .*captured events not written to Redis|shutdown failed/)
})

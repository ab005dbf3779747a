import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { aliveKey, brokersKey, registerStore, storeKey } from '../broker/capture/capture-store.ts'
import { encode, storeEntry } from '../broker/capture/encode.ts'
import { Pump } from '../broker/capture/pump.ts'
import { startRecovery } from '../broker/capture/recover.ts'
import type { WireEvent } from '../common/events.ts'
import { createLogger } from '../common/logger.ts'
import type { BatchJobData } from '../common/queues.ts'
import { services, sleep, unique, waitFor } from './helpers/stack.ts'

const events: WireEvent[] = [
  { id: 'r1', type: 'published', ts: 1, brokerId: 'b1', clientId: 'c', epoch: 1, seq: 1, prev: 0, topic: 't', payload: 'AQ==', qos: 1, retain: false, dup: false, messageId: 1 },
  { id: 'r2', type: 'published', ts: 2, brokerId: 'b1', clientId: 'c', epoch: 1, seq: 2, prev: 1, topic: 't', payload: 'Ag==', qos: 2, retain: false, dup: false, messageId: 2 },
  { id: 'r3', type: 'delivered', ts: 3, brokerId: 'b1', clientId: 's', epoch: 1, seq: 1, prev: 0, topic: 't', qos: 1, messageId: 1 },
]

async function setup(t: import('node:test').TestContext) {
  const svc = await services()
  const redis = new Redis(svc.redisUrl, { maxRetriesPerRequest: null })
  const prefix = `{${unique('rec')}}`
  const queues: Queue<BatchJobData>[] = []
  const queue = (name: string) => {
    const q = new Queue<BatchJobData>(name, { connection: redis, prefix })
    queues.push(q)
    return q
  }
  t.after(async () => {
    await Promise.all(queues.map((q) => q.close()))
    redis.disconnect()
  })
  return { redis, prefix, queue }
}

test('a flush a broker stored (and acknowledged) but never queued is queued by another broker once the first is dead', async (t) => {
  const { redis, prefix, queue } = await setup(t)
  // a broker that died between the acknowledgement and the pump: its entries 7 and 8, its alive key gone
  const dead = await registerStore(redis, prefix, 'dead.1')
  await dead.close(false)
  await redis.hset(storeKey(prefix, 'dead.1'), '8', storeEntry(encode(events.slice(2), 1000, 1 << 20)), '7', storeEntry(encode(events.slice(0, 2), 1000, 1 << 20)))
  await redis.del(aliveKey(prefix, 'dead.1'))
  // a live broker's entry (its pump is about to take it) is left alone
  const live = await registerStore(redis, prefix, 'live.1')
  await redis.hset(storeKey(prefix, 'live.1'), '3', storeEntry(encode(events.slice(0, 1), 1000, 1 << 20)))

  const recovery = startRecovery({ redis, prefix, tag: 'me.1', maxJobEvents: 1000, maxJobBytes: 1 << 20, log: createLogger('test', 'silent') })
  t.after(() => recovery.close())
  await waitFor('the dead broker forgotten', async () => !(await redis.sismember(brokersKey(prefix), 'dead.1')))

  const published = await queue('published').getJobs(['waiting'])
  const delivered = await queue('delivered').getJobs(['waiting'])
  // the ids the dead broker would have used had it queued each flush alone
  assert.deepEqual(published.map((j) => j.id), ['dead.1.7.0'])
  assert.deepEqual(published[0]?.data.events, events.slice(0, 2), 'events exactly as captured')
  assert.deepEqual(delivered.map((j) => [j.id, j.data.events.map((e) => e.id)]), [['dead.1.8.0', ['r3']]])
  assert.equal(await redis.exists(storeKey(prefix, 'dead.1')), 0, 'its store is empty')
  assert.equal(await redis.hlen(storeKey(prefix, 'live.1')), 1, "a live broker's store is not touched")
  assert.equal(await redis.sismember(brokersKey(prefix), 'live.1'), 1)

  // another sweep (every 5 s) finds nothing more to do
  await sleep(5500)
  assert.equal((await queue('published').getJobs(['waiting'])).length, 1)
  assert.equal((await queue('delivered').getJobs(['waiting'])).length, 1)
  await live.close(true)
})

test('a dead broker\'s store claimed by another broker is left to it until the claim expires', async (t) => {
  const { redis, prefix, queue } = await setup(t)
  await redis.sadd(brokersKey(prefix), 'gone.2')
  // two brokers sweeping at once: only the one holding the claim empties the store
  await redis.set(`${prefix}:capture:claim:gone.2`, 'other', 'PX', 60_000)
  await redis.hset(storeKey(prefix, 'gone.2'), '1', storeEntry(encode(events, 1000, 1 << 20)))
  const recovery = startRecovery({ redis, prefix, tag: 'me.2', maxJobEvents: 1000, maxJobBytes: 1 << 20, log: createLogger('test', 'silent') })
  t.after(() => recovery.close())
  await sleep(1000)
  assert.equal(await redis.hlen(storeKey(prefix, 'gone.2')), 1, 'claimed by another broker: left to it')
  assert.equal((await queue('published').getJobs(['waiting'])).length, 0)
  // the claim expires (its holder died too): the next sweep takes the store
  await redis.del(`${prefix}:capture:claim:gone.2`)
  await waitFor('the store emptied', async () => (await redis.exists(storeKey(prefix, 'gone.2'))) === 0, 15_000)
  assert.deepEqual((await queue('published').getJobs(['waiting'])).map((j) => j.id), ['gone.2.1.0'])
  assert.deepEqual((await queue('delivered').getJobs(['waiting'])).map((j) => j.id), ['gone.2.1.1'])
})

test('a job that cannot be added keeps its flush in the capture store: the entry goes only with its jobs', async (t) => {
  const { redis, prefix, queue } = await setup(t)
  const pumpRedis = redis.duplicate()
  t.after(() => pumpRedis.disconnect())
  const pump = new Pump({ redis: pumpRedis, prefix, tag: 'p.1', storeKey: storeKey(prefix, 'p.1'), maxJobEvents: 1000, maxJobBytes: 1 << 20 })
  t.after(() => pump.close())
  const flush = { ...encode(events, 1000, 1 << 20), n: 4, stored: true }
  await redis.hset(storeKey(prefix, 'p.1'), '4', storeEntry(flush))
  // BullMQ's add script for `delivered` fails at its first write (INCR of the id counter);
  // Redis runs the rest of the transaction anyway, `published` included
  await redis.set(`${prefix}:delivered:id`, 'not a number')
  await assert.rejects(pump.write([flush], false), /not an integer/)
  assert.equal(await redis.hlen(storeKey(prefix, 'p.1')), 1, 'the entry stays')
  assert.deepEqual((await queue('published').getJobs(['waiting'])).map((j) => j.id), ['p.1.4.0'])

  await redis.del(`${prefix}:delivered:id`)
  await pump.write([flush], true)
  assert.equal(await redis.hlen(storeKey(prefix, 'p.1')), 0, 'gone with its jobs')
  assert.deepEqual((await queue('published').getJobs(['waiting'])).map((j) => j.id), ['p.1.4.0'], 'added once: the same id')
  assert.deepEqual((await queue('delivered').getJobs(['waiting'])).map((j) => j.id), ['p.1.4.1'])
  // a retry after the transaction ran (its reply lost) adds nothing
  await pump.write([flush], true)
  assert.equal((await queue('published').getJobs(['waiting'])).length + (await queue('delivered').getJobs(['waiting'])).length, 2)
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { EventBatcher } from '../broker/capture/batcher.ts'
import { storeKey } from '../broker/capture/capture-store.ts'
import type { EventType } from '../common/event-types.ts'
import type { WireEvent } from '../common/events.ts'
import { createLogger } from '../common/logger.ts'
import type { BatchJobData } from '../common/queues.ts'
import { services } from './helpers/stack.ts'
import { unique } from './helpers/stack.ts'

test('capture job ids: <tag>.<flush>.<job>, so a flush written again (same tag, same flush) adds no job', async (t) => {
  const svc = await services()
  const connection = new Redis(svc.redisUrl, { maxRetriesPerRequest: null })
  const prefix = `{${unique('ids')}}`
  const queues = new Map<EventType, Queue<BatchJobData>>()
  const queueFor = (type: EventType) => {
    let q = queues.get(type)
    if (!q) queues.set(type, (q = new Queue<BatchJobData>(type, { connection, prefix })))
    return q
  }
  t.after(async () => {
    await Promise.all([...queues.values()].map((q) => q.close()))
    connection.disconnect()
  })
  const events: WireEvent[] = [
    { id: 'e1', type: 'published', ts: 1, brokerId: 'b:1', clientId: 'c', epoch: 1, seq: 1, topic: 't', payload: 'AQ==', qos: 1, retain: false, dup: false, messageId: 1 },
    { id: 'e2', type: 'published', ts: 2, brokerId: 'b:1', clientId: 'c', epoch: 1, seq: 2, prev: 1, topic: 't', payload: 'Ag==', qos: 1, retain: false, dup: false, messageId: 2 },
    { id: 'e3', type: 'delivered', ts: 3, brokerId: 'b:1', clientId: 's', epoch: 1, seq: 1, topic: 't', qos: 1, messageId: 1 },
  ]
  // two batchers with one tag stand for one broker's flush and its retry after a lost reply
  for (let i = 0; i < 2; i++) {
    const pumpRedis = connection.duplicate()
    t.after(() => pumpRedis.disconnect())
    const batcher = new EventBatcher({ redis: connection, pumpRedis, prefix, tag: 'brk_1.cafe', storeKey: storeKey(prefix, 'brk_1.cafe'), log: createLogger('test', 'silent'), maxJobEvents: 1, maxJobBytes: 1 << 20, maxBacklogEvents: 1000, maxBacklogBytes: 1 << 20 })
    const stored: (Error | null)[] = []
    for (const e of events) batcher.capture(e, 200, (err) => stored.push(err))
    await batcher.close()
    assert.deepEqual(stored, [null, null, null], 'every waiter told the event is stored')
    // the pump deleted the acknowledgement path's entry in the transaction that added the jobs
    assert.equal(await connection.hlen(storeKey(prefix, 'brk_1.cafe')), 0, 'the capture store is empty')
  }
  const published = await queueFor('published').getJobs(['waiting'])
  const delivered = await queueFor('delivered').getJobs(['waiting'])
  assert.deepEqual(published.map((j) => j.id).sort(), ['brk_1.cafe.1.0', 'brk_1.cafe.1.1'])
  assert.deepEqual(delivered.map((j) => j.id), ['brk_1.cafe.1.2'])
  assert.deepEqual(published.flatMap((j) => j.data.events.map((e) => e.id)).sort(), ['e1', 'e2'])
})

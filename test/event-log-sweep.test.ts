import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { MongoClient } from 'mongodb'
import type { WireEvent } from '../common/events.ts'
import { createLogger } from '../common/logger.ts'
import { EventLog } from '../runtime/store/event-log.ts'
import { startStack, waitFor } from './helpers/stack.ts'

const DAY = 86_400_000

test('event log sweep (server without TTL indexes): old events go, recent stay, one worker sweeps per period', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const redis = new Redis(stack.services.redisUrl)
  const claims: string[] = []
  // two workers' event logs over one database, claiming through the same Redis key as the worker does
  const logs = ['a', 'b'].map((name) => new EventLog(stack.db, 1, createLogger('test', 'silent'), {
    checkMs: 50,
    periodMs: 60_000,
    claim: async (periodMs) => {
      const won = (await redis.set(`${stack.prefix}:event-log-sweep`, name, 'PX', periodMs, 'NX')) === 'OK'
      if (won) claims.push(name)
      return won
    },
  }))
  // the sweeps stop before their Redis goes; quit() rejects if the connection already closed
  t.after(async () => {
    logs.forEach((l) => l.close())
    await redis.quit().catch(() => redis.disconnect())
  })
  const now = Date.now()
  const event = (id: string, ts: number): WireEvent =>
    ({ id, type: 'published', ts, brokerId: 'b1', clientId: 'c1', epoch: 1, seq: 1, topic: 't', payload: 'AQI=', qos: 0, retain: false, dup: false })
  // written before setup() starts the checks: the first sweep of the period must find them
  await (logs[0] as EventLog).append([event('old-1', now - 3 * DAY), event('old-2', now - 2 * DAY), event('new-1', now - DAY / 2), event('new-2', now)])
  await Promise.all(logs.map((l) => l.setup()))
  const indexes = await stack.db.collection('events').indexes()
  if (indexes.some((i) => i.name === 'retention')) {
    t.skip('this server has TTL indexes: no sweep runs')
    return
  }
  const events = stack.db.collection('events')
  await waitFor('the old events to be swept', async () => (await events.countDocuments({ _id: { $in: ['old-1', 'old-2'] } as never })) === 0, 10_000, 50)
  assert.deepEqual((await events.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id).sort(), ['new-1', 'new-2'])
  // many checks later (50 ms apart), still one sweep in this period, by one of the two
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(claims.length, 1, `one claim won: ${claims.join(', ')}`)
})

test('event log sweep: while the first event in insertion order is younger than the cutoff, no delete is sent', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const mongo = new MongoClient(stack.services.mongoUrl, { monitorCommands: true })
  await mongo.connect()
  const commands: string[] = []
  mongo.on('commandStarted', (c) => commands.push(c.commandName))
  let claims = 0
  const log = new EventLog(mongo.db(stack.db.databaseName), 1, createLogger('test', 'silent'), { checkMs: 50, periodMs: 0, claim: async () => (++claims, true) })
  t.after(async () => {
    log.close()
    await mongo.close()
  })
  const now = Date.now()
  await log.append([0, 1, 2].map((i): WireEvent => ({ id: `recent-${i}`, type: 'published', ts: now - i * 1000, brokerId: 'b1', clientId: 'c1', epoch: 1, seq: 1, topic: 't', payload: '', qos: 0, retain: false, dup: false })))
  await log.setup()
  if ((await stack.db.collection('events').indexes()).some((i) => i.name === 'retention')) {
    t.skip('this server has TTL indexes: no sweep runs')
    return
  }
  await waitFor('three sweeps', async () => claims >= 3, 10_000, 20)
  assert.ok(commands.includes('find'), 'each sweep looks at the first event')
  assert.ok(!commands.includes('delete'), `no delete sent: ${commands.join(', ')}`)
  assert.equal(await stack.db.collection('events').countDocuments({}), 3)
})

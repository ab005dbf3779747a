import assert from 'node:assert/strict'
import { createConnection } from 'node:net'
import { test, type TestContext } from 'node:test'
import mqttPacket from 'mqtt-packet'
import type { WireEvent } from '../common/events.ts'
import { Redis } from 'ioredis'
import { MongoClient } from 'mongodb'
import { lastSeenKey, Presence, type LastSeenStore, type PresenceDocument } from '../runtime/store/presence.ts'
import { connect, startStack, waitFor, type Stack } from './helpers/stack.ts'

function presenceOf(stack: Stack, clientId: string, check: (d: PresenceDocument) => boolean): Promise<PresenceDocument> {
  return waitFor(`presence of ${clientId}`, async () => {
    const doc = await stack.db.collection<PresenceDocument>('presence').findOne({ _id: clientId })
    return doc && check(doc) ? doc : undefined
  })
}

test('presence follows connect, takeover, keepalive timeout and broker shutdown', async (t) => {
  const stack = await startStack(t, { functions: {} })
  const before = Date.now()
  const first = await connect(stack.mqttPort, { clientId: 'p-1', reconnectPeriod: 0 })
  const online = await presenceOf(stack, 'p-1', (d) => d.online)
  assert.equal(online.brokerId, stack.broker.id)
  assert.ok((online.since?.getTime() ?? 0) >= before - 5)

  // takeover: the same client id connects again [MQTT-3.1.4-2]
  const closed = new Promise<void>((resolve) => first.once('close', () => resolve()))
  await connect(stack.mqttPort, { clientId: 'p-1', reconnectPeriod: 0 })
  await closed
  const reasons = await waitFor('the old connection to end', async () => {
    const d = await stack.db.collection<{ reason: string; epoch: number }>('events').find({ clientId: 'p-1', type: 'clientDisconnected' }).toArray()
    return d.length === 1 ? d : undefined
  })
  assert.equal(reasons[0]?.reason, 'takeover')
  const taken = await presenceOf(stack, 'p-1', (d) => d.epoch > online.epoch)
  assert.equal(taken.online, true, 'the new connection is online, whatever order the events were processed in')
  assert.equal(await stack.db.collection('presence').countDocuments({ _id: 'p-1' } as never), 1)

  // keepalive: CONNECT with keepalive 1, then silence
  const socket = createConnection({ port: stack.mqttPort, host: '127.0.0.1' })
  t.after(() => socket.destroy())
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'p-quiet', clean: true, keepalive: 1 }))
  await presenceOf(stack, 'p-quiet', (d) => d.online)
  const quiet = await presenceOf(stack, 'p-quiet', (d) => !d.online)
  assert.equal(quiet.lastDisconnectReason, 'keepalive-timeout')

  await stack.broker.close()
  const shut = await presenceOf(stack, 'p-1', (d) => !d.online)
  assert.equal(shut.lastDisconnectReason, 'shutdown')
  assert.equal(shut.epoch, taken.epoch)
})

function lastSeenStore(t: TestContext, stack: Stack): LastSeenStore {
  const redis = new Redis(stack.services.redisUrl)
  t.after(() => redis.disconnect())
  return { redis, key: lastSeenKey(stack.prefix) }
}

test('late and duplicated events do not corrupt presence', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const presence = new Presence(stack.db, { lastSeen: lastSeenStore(t, stack) })
  const base = { brokerId: 'b1', clientId: 'late', remoteAddress: '127.0.0.1' }
  let n = 0
  const connected = (epoch: number, ts: number): WireEvent =>
    ({ ...base, id: `c${++n}`, type: 'clientConnected', ts, epoch, seq: 1, clean: true, keepalive: 60, protocolVersion: 4 })
  const disconnected = (epoch: number, ts: number): WireEvent =>
    ({ ...base, id: `d${++n}`, type: 'clientDisconnected', ts, epoch, seq: 3, reason: 'takeover' })
  const doc = () => stack.db.collection<PresenceDocument>('presence').findOne({ _id: 'late' })

  await presence.apply([connected(200, 2000)])
  await presence.apply([disconnected(100, 1500)]) // the old connection's end, processed late
  assert.equal((await doc())?.online, true)
  assert.equal((await doc())?.epoch, 200)

  await presence.apply([disconnected(300, 3500)]) // a newer connection ended before its connect was processed
  await presence.apply([connected(300, 3000)])
  await presence.apply([connected(300, 3000), disconnected(300, 3500)]) // and everything again
  const final = await doc()
  assert.equal(final?.online, false)
  assert.equal(final?.epoch, 300)
  assert.equal(final?.lastDisconnectAt?.getTime(), 3500)
  assert.equal(await stack.db.collection('presence').countDocuments(), 1)

  // lastSeen from other events: the newest time, never moved back (no setup() here: close() writes it);
  // kept in Redis (times from now: entries older than 30 days are trimmed), while the document keeps its disconnect time
  const now = Date.now()
  const published = (ts: number): WireEvent =>
    ({ ...base, id: `p${++n}`, type: 'published', ts: now + ts, epoch: 300, seq: 2, topic: 't', payload: '', qos: 0, retain: false, dup: false })
  await presence.apply([published(4000), published(3900)])
  await presence.apply([published(3950)])
  await presence.close()
  const stored = await doc()
  assert.equal(stored?.lastSeen.getTime(), 3500)
  assert.equal(stored?.online, false)
  assert.equal((await presence.lastSeen(stored ? [stored] : [])).get('late')?.getTime(), now + 4000)
})

test('a connect replaces username and remoteAddress: absent on the new connection means cleared', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const presence = new Presence(stack.db)
  t.after(() => presence.close())
  const connected = (epoch: number, extra: { username?: string; remoteAddress?: string }): WireEvent =>
    ({ brokerId: 'b1', clientId: 'who', id: `w${epoch}`, type: 'clientConnected', ts: epoch, epoch, seq: 1, clean: true, keepalive: 60, protocolVersion: 4, ...extra })
  const doc = () => stack.db.collection<PresenceDocument>('presence').findOne({ _id: 'who' })

  await presence.apply([connected(100, { username: 'alice', remoteAddress: '10.0.0.1' })])
  assert.deepEqual([(await doc())?.username, (await doc())?.remoteAddress], ['alice', '10.0.0.1'])
  await presence.apply([connected(200, {})])
  const anonymous = await doc()
  assert.equal(anonymous?.epoch, 200)
  assert.equal('username' in (anonymous ?? {}), false, 'no stale username')
  assert.equal('remoteAddress' in (anonymous ?? {}), false, 'no stale address')
  await presence.apply([connected(300, { username: 'bob', remoteAddress: '10.0.0.2' })])
  await presence.apply([connected(250, { username: 'late' })]) // an older connect processed late changes nothing
  assert.deepEqual([(await doc())?.username, (await doc())?.remoteAddress, (await doc())?.epoch], ['bob', '10.0.0.2', 300])
})

test('presence writes the store on connects and disconnects only, whatever the message traffic', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  // a client of its own that reports every command it sends
  const mongo = new MongoClient(stack.services.mongoUrl, { monitorCommands: true })
  await mongo.connect()
  t.after(() => mongo.close())
  const writes: string[] = []
  mongo.on('commandStarted', (c) => {
    if (['update', 'insert', 'delete', 'findAndModify'].includes(c.commandName) && c.command[c.commandName] === 'presence') writes.push(c.commandName)
  })
  const store = lastSeenStore(t, stack)
  const presence = new Presence(mongo.db(stack.db.databaseName), { lastSeen: store })
  const now = Date.now()
  const ev = (clientId: string, i: number) => ({ brokerId: 'b1', clientId, id: `${clientId}-${i}`, ts: now + i, epoch: 1, seq: i + 1 })
  const clients = ['dev-a', 'dev-b', 'dev-c']
  await presence.apply(clients.map((c): WireEvent => ({ ...ev(c, 0), type: 'clientConnected', clean: true, keepalive: 60, protocolVersion: 4 })))
  assert.deepEqual(writes, ['insert', 'insert', 'insert'], 'a first connect is one insert: no update, which scans on FerretDB 1.x')
  // 3,000 messages in 30 batches: not one store write among them
  for (let b = 0; b < 30; b++) {
    await presence.apply(Array.from({ length: 100 }, (_, k): WireEvent => {
      const i = 1 + b * 100 + k
      return { ...ev(clients[i % 3] as string, i), type: 'published', topic: 'sensors/x', payload: '', qos: 1, retain: false, dup: false }
    }))
  }
  await presence.close()
  assert.equal(writes.length, 3, `no store write for messages, saw: ${writes.join(', ')}`)
  // their times are in Redis, the newest per client: 3,000 is dev-a's (3000 % 3 = 0), 2,999 dev-c's
  const scores = await store.redis.zmscore(store.key, ...clients)
  assert.deepEqual(scores.map(Number), [now + 3000, now + 2998, now + 2999])
  await presence.apply(clients.map((c): WireEvent => ({ ...ev(c, 5000), type: 'clientDisconnected', reason: 'disconnect' })))
  assert.deepEqual(writes.slice(3), ['update', 'update', 'update'], 'one write per disconnect')
  // a known client's connect: the insert finds its document, the conditional update decides
  await presence.apply([{ ...ev('dev-a', 6000), epoch: 2, type: 'clientConnected', clean: true, keepalive: 60, protocolVersion: 4 }])
  assert.deepEqual(writes.slice(6), ['insert', 'update'])
  await presence.apply([{ ...ev('dev-a', 6001), epoch: 2, type: 'clientDisconnected', reason: 'disconnect' }])
  const docs = await stack.db.collection<PresenceDocument>('presence').find().sort({ _id: 1 }).toArray()
  assert.deepEqual(docs.map((d) => [d._id, d.online, d.epoch, d.lastSeen.getTime()]), clients.map((c) => (c === 'dev-a' ? [c, false, 2, now + 6001] : [c, false, 1, now + 5000])))
})

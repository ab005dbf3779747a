import assert from 'node:assert/strict'
import { createConnection } from 'node:net'
import { test } from 'node:test'
import mqttPacket from 'mqtt-packet'
import type { WireEvent } from '../common/events.ts'
import { Presence, type PresenceDocument } from '../runtime/store/presence.ts'
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

test('late and duplicated events do not corrupt presence', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const presence = new Presence(stack.db)
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

  // lastSeen from other events: the newest time, never moved back (no setup() here: close() writes it)
  const published = (ts: number): WireEvent =>
    ({ ...base, id: `p${++n}`, type: 'published', ts, epoch: 300, seq: 2, topic: 't', payload: '', qos: 0, retain: false, dup: false })
  await presence.apply([published(4000), published(3900)])
  await presence.apply([published(3950)])
  await presence.close()
  assert.equal((await doc())?.lastSeen.getTime(), 4000)
  assert.equal((await doc())?.online, false)
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

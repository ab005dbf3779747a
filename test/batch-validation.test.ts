import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseWireEvent } from '../common/events.ts'
import { readBatch } from '../runtime/batch-events.ts'

/*
 * The worker takes a batch's events by a cheap shape check instead of a zod parse of
 * each (runtime/batch-events.ts). What it accepts that way must be what zod accepts,
 * and what it refuses must be dead-lettered with zod's message.
 */

const client = { brokerId: 'b1', clientId: 'dev-1', epoch: 3, seq: 7, prev: 5, remoteAddress: '127.0.0.1' }
const broker = [
  { ...client, id: 'e1', ts: 1_700_000_000_000, type: 'published', topic: 'sensors/a/t', payload: 'MjEuNQ==', qos: 1, retain: false, dup: false, messageId: 9 },
  { ...client, id: 'e2', ts: 1, type: 'published', topic: 'x', payload: '', qos: 0, retain: true, dup: false, will: true, properties: { contentType: 'text/plain', correlationData: 'AQI=' } },
  { ...client, id: 'e3', ts: 1, type: 'delivered', topic: 'x', qos: 2, messageId: 4 },
  { ...client, id: 'e4', ts: 1, type: 'clientConnected', clean: true, keepalive: 60, protocolVersion: 5, username: 'u', properties: { sessionExpiryInterval: 0, receiveMaximum: 10 } },
  { ...client, id: 'e5', ts: 1, type: 'clientDisconnected', reason: 'takeover' },
  { ...client, id: 'e6', ts: 1, type: 'clientDisconnecting', reason: 'disconnect', reasonCode: 0, reasonCodeFrom: 'client' },
  { ...client, id: 'e7', ts: 1, type: 'subscribed', subscriptions: [{ topic: 'a/#', qos: 1, noLocal: true }] },
  { ...client, id: 'e8', ts: 1, type: 'unsubscribed', topics: ['a/#'] },
  { ...client, id: 'e9', ts: 1, type: 'clientError', error: { message: 'boom' } },
  { ...client, id: 'e10', ts: 1, type: 'keepaliveTimeout', keepalive: 1 },
  { ...client, id: 'e11', ts: 1, clientId: null, type: 'connectionError', reason: 'not-authorized', error: { message: 'no' }, returnCode: 5 },
  { id: 'e12', ts: 1, brokerId: 'b1', type: 'ready', version: '0.1.0', listeners: [{ protocol: 'mqtt', address: '127.0.0.1', port: 1883 }] },
]

test('events as the broker writes them are taken as they are, and zod accepts every one of them', () => {
  const { valid, invalid } = readBatch(broker)
  assert.deepEqual(invalid, [])
  assert.equal(valid.length, broker.length)
  for (const [i, e] of broker.entries()) {
    assert.ok(parseWireEvent(e).ok, `zod accepts ${e.id}`)
    // the fast path hands on the object itself: no copy per event ('ready' goes through zod)
    if (e.type !== 'ready') assert.equal(valid[i], e, `${e.id} taken by reference`)
  }
})

test('an event missing or mistyping a field the runtime reads goes to zod, and is dead-lettered with its message', () => {
  const published = broker[0] as Record<string, unknown>
  const broken: [string, Record<string, unknown>][] = [
    ['id', { ...published, id: '' }],
    ['id', { ...published, id: 'x'.repeat(65) }],
    ['ts', { ...published, ts: '1' }],
    ['brokerId', { ...published, brokerId: undefined }],
    ['type', { ...published, type: 'pubished' }],
    ['clientId', { ...published, clientId: 7 }],
    ['epoch', { ...published, epoch: 0 }],
    ['seq', { ...published, seq: 1.5 }],
    ['topic', { ...published, topic: '' }],
    ['payload', { ...published, payload: 42 }],
    ['qos', { ...published, qos: 3 }],
    ['reason', { ...(broker[4] as object), reason: 'gone' }],
    ['subscriptions', { ...(broker[6] as object), subscriptions: [{ qos: 1 }] }],
    ['topics', { ...(broker[7] as object), topics: [1] }],
  ]
  const { valid, invalid } = readBatch([...broken.map(([, e]) => e), null, 'text'])
  assert.deepEqual(valid, [])
  assert.equal(invalid.length, broken.length + 2)
  for (const [i, [field, e]] of broken.entries()) {
    const zod = parseWireEvent(e)
    assert.ok(!zod.ok, `zod refuses a bad ${field} too`)
    assert.equal(invalid[i]?.error, zod.error)
    assert.match(invalid[i]?.error ?? '', field === 'type' ? /^type: / : new RegExp(`${field}`))
  }
})

test('fields the runtime does not read are not checked again: they reach handlers as the broker wrote them', () => {
  // documented in runtime/batch-events.ts: Redis is inside the trust boundary
  const odd = { ...(broker[0] as object), payload: 'not base64!', retainAsPublished: 'extra field' }
  const { valid } = readBatch([odd])
  assert.equal(valid[0], odd)
  assert.equal(parseWireEvent(odd).ok, false, 'zod would have refused the payload')
})

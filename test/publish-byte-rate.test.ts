import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect, recorder, startStack, waitFor } from './helpers/stack.ts'

/*
 * Issue 14 item 4: a byte rate per client beside the message rate. Past it the broker
 * stops reading the client's socket (broker/limits/read-gate.ts): TCP holds the sender
 * back, nothing already sent is dropped, and other clients are served meanwhile.
 */

const functions = { 'published.ts': recorder('published') }

test('publishBytesPerClient: past the byte rate the broker stops reading that client until the rate allows; every byte arrives, in order; others go on', async (t) => {
  const rate = 100_000
  const size = 25_000
  const count = 20
  const stack = await startStack(t, { functions, broker: { publishBytesPerClient: rate } })
  const subscriber = await connect(stack.mqttPort, { clientId: 'br-sub' })
  await subscriber.subscribeAsync('bytes/#', { qos: 1 })
  const received: Buffer[] = []
  let otherAt = -1
  const all = new Promise<void>((resolve) => subscriber.on('message', (topic, p) => {
    if (topic === 'bytes/other') otherAt = received.length
    else if (received.push(p) === count) resolve()
  }))

  const flooder = await connect(stack.mqttPort, { clientId: 'br-flood' })
  const other = await connect(stack.mqttPort, { clientId: 'br-other' })
  const payloads = Array.from({ length: count }, (_, i) => Buffer.alloc(size, i))
  const started = performance.now()
  const acks = payloads.map((p) => flooder.publishAsync('bytes/flood', p, { qos: 1 }))
  await new Promise((r) => setTimeout(r, 300))
  const otherStarted = performance.now()
  await other.publishAsync('bytes/other', 'other', { qos: 1 })
  const otherMs = performance.now() - otherStarted
  await Promise.all(acks)
  const elapsed = performance.now() - started
  await all

  assert.deepEqual(received.map((p) => [p.length, p[0]]), payloads.map((p) => [p.length, p[0]]), 'every message whole, in order')
  assert.ok(otherAt >= 0 && otherAt < count, `the other client's message came before the flood ended (after ${otherAt})`)
  assert.ok(otherMs < 1000, `the other client was served in ${Math.round(otherMs)} ms`)
  // one second's burst, then the rate; a packet may overdraw by its own size
  const floor = ((count * size - rate - size) / rate) * 1000
  assert.ok(elapsed >= floor - 100, `${count * size} bytes at ${rate} B/s took ${Math.round(elapsed)} ms, less than ${floor} ms`)
  assert.ok(elapsed < floor + 5000, `took ${Math.round(elapsed)} ms`)
  // every one captured, none twice
  await waitFor('every publish captured', async () => (await stack.db.collection('calls').countDocuments({ type: 'published', 'event.clientId': 'br-flood' })) === count, 20_000, 250)
})

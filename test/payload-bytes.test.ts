import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import type { Binary } from 'mongodb'
import { connect, recorder, startStack, unique, waitFor } from './helpers/stack.ts'

const run = promisify(execFile)

const cases: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['zeros', Buffer.from([0, 0, 1, 0, 255, 0])],
  ['invalid-utf8', Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc, 0xff, 0xfe])],
  ['256k', Buffer.from(Array.from({ length: 256 * 1024 }, (_, i) => (i * 7919 + (i >> 8)) & 0xff))],
]

test('payloads reach handlers and the event log byte for byte', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': recorder('published') } })
  const client = await connect(stack.mqttPort, { clientId: 'bytes' })
  for (const [name, payload] of cases) await client.publishAsync(`bytes/${name}`, payload, { qos: 1 })

  for (const [name, payload] of cases) {
    const call = await waitFor(`handler call for ${name}`, () =>
      stack.db.collection<{ event: { id: string; payload: Binary } }>('calls').findOne({ 'event.topic': `bytes/${name}` }))
    assert.deepEqual(Buffer.from(call.event.payload.buffer), payload, `${name}: bytes the handler saw`)
    const logged = await stack.db.collection<{ _id: string; payload: Binary }>('events').findOne({ _id: call.event.id })
    assert.ok(logged, `${name}: in the event log`)
    assert.deepEqual(Buffer.from(logged.payload.buffer), payload, `${name}: bytes in the event log`)
  }
})

test('a file sent with mosquitto_pub -f arrives unchanged', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': recorder('published') } })
  const bytes = cases[3]?.[1] as Buffer
  const file = join(tmpdir(), unique('payload'))
  await writeFile(file, bytes)
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(stack.mqttPort), '-t', 'file/blob', '-f', file, '-q', '1'])
  const call = await waitFor('the file payload', () =>
    stack.db.collection<{ event: { payload: Binary } }>('calls').findOne({ 'event.topic': 'file/blob' }))
  assert.equal(call.event.payload.buffer.length, bytes.length)
  assert.deepEqual(Buffer.from(call.event.payload.buffer), bytes)
})

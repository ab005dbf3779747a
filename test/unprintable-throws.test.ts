import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { queueName } from '../common/queues.ts'
import type { DeadLetterDocument } from '../runtime/redelivery/index.ts'
import { connect, sleep, startStack, waitFor } from './helpers/stack.ts'

/** A handler that counts its runs, then throws `thrown` (an expression). */
function thrower(thrown: string, config = '{ attempts: 1 }'): string {
  return `import { defineHandler } from 'mqtt-functions'
export const config = ${config}
export default defineHandler('published', async (event, ctx) => {
  await ctx.db.collection('runs').updateOne({ _id: event.id + '/' + ctx.handler }, { $inc: { runs: 1 } }, { upsert: true })
  throw ${thrown}
})
`
}

// what each handler throws, and what its dead letter must say
const THROWS: Record<string, { thrown: string; name: string; message: RegExp }> = {
  nullproto: { thrown: 'Object.assign(Object.create(null), { code: 7 })', name: 'NonError', message: /^thrown object: \[Object: null prototype\] \{ code: 7 \}$/ },
  evil: { thrown: "{ toString() { throw new Error('no') }, why: 'toString throws' }", name: 'NonError', message: /^thrown object: \{ toString: \[Function: toString\], why: 'toString throws' \}$/ },
  symbol: { thrown: "Symbol('boom')", name: 'NonError', message: /^thrown Symbol: Symbol\(boom\)$/ },
  undef: { thrown: 'undefined', name: 'NonError', message: /^thrown undefined$/ },
  text: { thrown: "'plain words'", name: 'NonError', message: /^plain words$/ },
  getter: { thrown: "Object.defineProperty(new Error('x'), 'message', { get() { throw new Error('no') } })", name: 'Error', message: /^\(no readable message\)$/ },
}
const EVENTS = 5

test('anything thrown is a readable dead letter of its own pair; every other pair runs once and no batch fails', async (t) => {
  const functions: Record<string, string> = { 'published/steady.ts': thrower('null as never', '{}').replace('throw null as never', '') }
  for (const [name, { thrown }] of Object.entries(THROWS)) functions[`published/${name}.ts`] = thrower(thrown)
  functions['published/twice.ts'] = thrower('Object.create(null)', '{ attempts: 2, backoff: 50 }')
  const stack = await startStack(t, { functions })
  const client = await connect(stack.mqttPort, { clientId: 'thrower' })
  for (let i = 0; i < EVENTS; i++) await client.publishAsync(`t/${i}`, String(i), { qos: 1 })

  const letters = stack.db.collection<DeadLetterDocument>('deadletters')
  const expected = (Object.keys(THROWS).length + 1) * EVENTS
  await waitFor(`${expected} dead letters`, async () => (await letters.countDocuments()) === expected, 30_000, 200)
  for (const [name, want] of Object.entries(THROWS)) {
    const docs = await letters.find({ handler: `published/${name}` }).toArray()
    assert.equal(docs.length, EVENTS, name)
    for (const doc of docs) {
      assert.equal(doc.errors.length, 1, name)
      assert.equal(doc.errors[0]?.name, want.name, name)
      assert.match(doc.errors[0]?.message ?? '', want.message, name)
    }
  }
  const twice = await letters.find({ handler: 'published/twice' }).toArray()
  assert.equal(twice.length, EVENTS)
  for (const doc of twice) assert.deepEqual(doc.errors.map((e) => [e.attempt, e.message]), [[1, 'thrown object: [Object: null prototype] {}'], [2, 'thrown object: [Object: null prototype] {}']])

  await sleep(500)
  const runs = stack.db.collection<{ _id: string; runs: number }>('runs')
  const steady = await runs.find({ _id: /\/published\/steady$/ }).toArray()
  assert.equal(steady.length, EVENTS)
  assert.ok(steady.every((r) => r.runs === 1), `the steady handler ran once per event: ${JSON.stringify(steady)}`)
  for (const name of Object.keys(THROWS)) {
    const mine = await runs.find({ _id: new RegExp(`/published/${name}$`) }).toArray()
    assert.deepEqual(mine.map((r) => r.runs), Array(EVENTS).fill(1), `${name} ran once per event`)
  }
  const redis = new Redis(stack.services.redisUrl, { maxRetriesPerRequest: null })
  const queue = new Queue(queueName('published'), { connection: redis, prefix: stack.prefix })
  t.after(async () => {
    await queue.close()
    redis.disconnect()
  })
  const counts = await queue.getJobCounts('failed', 'completed')
  assert.equal(counts.failed, EVENTS, 'only the retry jobs of `twice` failed (their last attempt), never a batch')
  const failed = await queue.getFailed()
  assert.ok(failed.every((j) => j.name !== 'batch'), 'no batch job failed')
})

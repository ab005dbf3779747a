import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect, sleep, startStack, waitFor } from './helpers/stack.ts'

const withSchema = `import { defineHandler } from 'mqtt-functions'
import { z } from 'zod'
export default defineHandler('published', { payload: z.object({ celsius: z.number(), room: z.string().optional() }) }, async (event, ctx) => {
  await ctx.db.collection('readings').insertOne({ eventId: event.id, celsius: event.data.celsius, room: event.data.room ?? null })
})
`

test('a payload schema: the handler gets the parsed payload; a payload that fails it is dead-lettered at once, never run or retried', async (t) => {
  const stack = await startStack(t, { functions: { 'published.ts': withSchema } })
  const client = await connect(stack.mqttPort, { clientId: 'thermo' })
  await client.publishAsync('t/1', JSON.stringify({ celsius: 21.5, room: 'kitchen' }), { qos: 1 })
  await client.publishAsync('t/2', JSON.stringify({ celsius: 'hot' }), { qos: 1 })
  await client.publishAsync('t/3', 'not json', { qos: 1 })

  const readings = stack.db.collection<{ celsius: number; room: string | null }>('readings')
  const reading = await waitFor('the valid reading', () => readings.findOne({}))
  assert.equal(reading.celsius, 21.5)
  assert.equal(reading.room, 'kitchen')

  const letters = stack.db.collection<{ event: { topic: string }; errors: { name: string; code?: string; message: string }[] }>('deadletters')
  await waitFor('two dead letters', async () => (await letters.countDocuments()) === 2)
  await sleep(1500) // a retry would come after the 1 s default backoff
  const byTopic = Object.fromEntries((await letters.find().toArray()).map((d) => [d.event.topic, d.errors]))
  assert.deepEqual(byTopic['t/2']?.map((e) => [e.name, e.message]), [['PayloadValidationError', "payload does not match the handler's schema: celsius: Invalid input: expected number, received string"]])
  assert.deepEqual(byTopic['t/3']?.map((e) => e.name), ['PayloadValidationError'])
  assert.deepEqual([...(byTopic['t/2'] ?? []), ...(byTopic['t/3'] ?? [])].map((e) => e.code), ['MQFN_ERR_PAYLOAD_INVALID', 'MQFN_ERR_PAYLOAD_INVALID'], 'coded in the registry')
  assert.match(byTopic['t/3']?.[0]?.message ?? '', /^payload is not JSON: Unexpected token/)
  assert.equal(await readings.countDocuments(), 1)
  assert.equal(await stack.db.collection('events').countDocuments({ type: 'published' }), 3, 'all three are in the event log')
})

import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import type { Binary } from 'mongodb'
import { EVENT_TYPES } from '../common/event-types.ts'
import { mqfn } from './helpers/processes.ts'
import { connect, functionsDir, loadIsolated, startStack, waitFor } from './helpers/stack.ts'

test('mqfn new writes a handler for every event that loads as it is, and never overwrites one', async (t) => {
  const dir = await functionsDir({})
  for (const event of EVENT_TYPES) {
    const made = mqfn(t, 'new', { MQFN_FUNCTIONS_DIR: dir }, [event, 'sample'])
    assert.equal(await made.exited(), 0, made.output())
  }
  const top = mqfn(t, 'new', { MQFN_FUNCTIONS_DIR: dir }, ['published'])
  assert.equal(await top.exited(), 0)
  assert.match(top.output(), /^wrote .*functions\/published\.ts\n$/)
  const loaded = await loadIsolated(dir)
  t.after(loaded.dispose)
  assert.deepEqual(loaded.errors, [])
  assert.deepEqual(loaded.handlers.map((h) => h.name).sort(), ['published', ...EVENT_TYPES.map((e) => `${e}/sample`)].sort())
  assert.match(await readFile(join(dir, 'published', 'sample.ts'), 'utf8'), /topic: '#',/)

  const again = mqfn(t, 'new', { MQFN_FUNCTIONS_DIR: dir }, ['published'])
  assert.equal(await again.exited(), 1)
  assert.match(again.output(), /functions\/published\.ts exists; not overwritten/)
  const bad = mqfn(t, 'new', { MQFN_FUNCTIONS_DIR: dir }, ['message'])
  assert.equal(await bad.exited(), 2)
  assert.equal(bad.output(), `mqfn new: "message" is not an event name. Valid names: ${EVENT_TYPES.join(', ')}\nrun "mqfn new --help" for usage\n`)
})

const storing = `import { defineHandler } from 'mqtt-functions'
export const config = { topic: 'cmd/#' }
export default defineHandler('published', async (event, ctx) => {
  if (event.topic === 'cmd/fail') throw new Error('told to fail')
  ctx.log.info({ topic: event.topic }, 'invoked')
  await ctx.db.collection('invoked').insertOne({ eventId: event.id, topic: event.topic, clientId: event.clientId, payload: event.payload, attempt: ctx.attempt })
})
`

test('mqfn invoke runs one handler once on --topic, --event or --from-log, against the real store', async (t) => {
  const stack = await startStack(t, { functions: { 'published/store.ts': storing, 'clientConnected.ts': storing.replace("'published'", "'clientConnected'").replace("export const config = { topic: 'cmd/#' }", '') } })
  const env = {
    REDIS_URL: stack.services.redisUrl, MONGO_URL: stack.services.mongoUrl, MQFN_DATABASE: stack.db.databaseName,
    MQFN_PREFIX: stack.prefix, MQFN_FUNCTIONS_DIR: stack.workerConfig.functionsDir,
  }
  const invoked = stack.db.collection<{ eventId: string; topic: string; clientId: string; payload: Binary; attempt: number }>('invoked')

  const byTopic = mqfn(t, 'invoke', env, ['published/store', '--topic', 'cmd/light', '--payload', 'on', '--client', 'lamp-1'])
  assert.equal(await byTopic.exited(), 0, byTopic.output())
  assert.match(byTopic.output(), /"msg":"invoked"/)
  assert.match(byTopic.output(), /mqfn invoke: published\/store succeeded in [\d.]+ ms on event invoke-/)
  const first = await invoked.findOne({ topic: 'cmd/light' })
  assert.equal(first?.clientId, 'lamp-1')
  assert.equal(Buffer.from(first?.payload.buffer ?? []).toString(), 'on')
  assert.equal(first?.attempt, 1)

  const failing = mqfn(t, 'invoke', env, ['published/store', '--topic', 'cmd/fail'])
  assert.equal(await failing.exited(), 1)
  assert.match(failing.output(), /mqfn invoke: published\/store failed in [\d.]+ ms on event invoke-\S+\nError: told to fail\n\s+at .*functions\/published\/store\.ts:4:/)

  const file = join(stack.workerConfig.functionsDir, '..', 'event.json')
  await writeFile(file, JSON.stringify({ type: 'published', clientId: 'from-file', topic: 'cmd/file', payloadText: 'héllo', qos: 1 }))
  const byFile = mqfn(t, 'invoke', env, ['published/store', '--event', file])
  assert.equal(await byFile.exited(), 0, byFile.output())
  assert.equal(Buffer.from((await invoked.findOne({ topic: 'cmd/file' }))?.payload.buffer ?? []).toString(), 'héllo')

  // replay a real event from the event log, bytes and all
  const client = await connect(stack.mqttPort, { clientId: 'recorded' })
  await client.publishAsync('cmd/recorded', Buffer.from([0, 1, 254, 255]), { qos: 1 })
  const live = await waitFor('the live run', () => invoked.findOne({ topic: 'cmd/recorded' }))
  const replay = mqfn(t, 'invoke', env, ['published/store', '--from-log', live.eventId])
  assert.equal(await replay.exited(), 0, replay.output())
  const runs = await invoked.find({ eventId: live.eventId }).toArray()
  assert.equal(runs.length, 2)
  assert.deepEqual(Buffer.from(runs[1]?.payload.buffer ?? []), Buffer.from([0, 1, 254, 255]))
  assert.equal(runs[1]?.clientId, 'recorded')

  const usage: [string[], RegExp][] = [
    [['published/store'], /name one handler and exactly one of --event, --topic, --from-log/],
    [['published/nope', '--topic', 'x'], /no handler "published\/nope" in .*; handlers: clientConnected, published\/store/],
    [['clientConnected', '--topic', 'x'], /--topic makes a published event, and clientConnected handles clientConnected; use --event <file\.json>/],
    [['published/store', '--from-log', 'missing'], /no event "missing" in the event log/],
    [['published/store', '--topic', 'x', '--qos', '3'], /--qos must be 0, 1 or 2, got "3"/],
  ]
  for (const [args, message] of usage) {
    const run = mqfn(t, 'invoke', env, args)
    assert.equal(await run.exited(), 2, args.join(' '))
    assert.match(run.output(), message)
  }
})

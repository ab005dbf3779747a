import assert from 'node:assert/strict'
import { test } from 'node:test'
import { mqfn } from './helpers/processes.ts'
import { connect, sleep, startStack, waitFor } from './helpers/stack.ts'

// counts its runs per event in `runs` (inserts only: FerretDB scans on update by _id)
const counting = (name: string) => `import { defineHandler } from 'mqtt-functions'
export default defineHandler('published', async (event, ctx) => {
  await ctx.db.collection('runs').insertOne({ handler: '${name}', eventId: event.id, topic: event.topic, attempt: ctx.attempt })
})
`

test('mqfn replay re-enqueues logged events, filtered by topic and client, to every handler or to one', async (t) => {
  const stack = await startStack(t, { functions: { 'published/a.ts': counting('a'), 'published/b.ts': counting('b') } })
  const env = { REDIS_URL: stack.services.redisUrl, MONGO_URL: stack.services.mongoUrl, MQFN_DATABASE: stack.db.databaseName, MQFN_PREFIX: stack.prefix }
  const one = await connect(stack.mqttPort, { clientId: 'one' })
  const two = await connect(stack.mqttPort, { clientId: 'two' })
  for (const topic of ['home/1/temp', 'home/2/temp', 'home/1/door']) await one.publishAsync(topic, 'x', { qos: 1 })
  await two.publishAsync('home/3/temp', 'x', { qos: 1 })
  const runs = stack.db.collection<{ handler: string; topic: string; eventId: string }>('runs')
  await waitFor('the live runs', async () => (await runs.countDocuments()) === 8)

  const dry = mqfn(t, 'replay', env, ['--type', 'published', '--topic', 'home/+/temp', '--dry-run'])
  assert.equal(await dry.exited(), 0, dry.output())
  assert.equal(dry.output(), 'would replay 3 published events\n')

  const toB = mqfn(t, 'replay', env, ['--type', 'published', '--topic', 'home/+/temp', '--client', 'one', '--handler', 'published/b'])
  assert.equal(await toB.exited(), 0, toB.output())
  assert.equal(toB.output(), 'replayed 2 published events to published/b\n')
  await waitFor('the replayed runs of b', async () => (await runs.countDocuments({ handler: 'b' })) === 6)
  await sleep(300)
  assert.equal(await runs.countDocuments({ handler: 'a' }), 4, 'a did not run again')
  assert.deepEqual((await runs.find({ handler: 'b' }).toArray()).map((r) => r.topic).sort(), ['home/1/door', 'home/1/temp', 'home/1/temp', 'home/2/temp', 'home/2/temp', 'home/3/temp'])

  const all = mqfn(t, 'replay', env, ['--type', 'published', '--client', 'two', '--since', '1h'])
  assert.equal(await all.exited(), 0, all.output())
  assert.equal(all.output(), 'replayed 1 published events\n')
  await waitFor('every handler ran on it again', async () => (await runs.countDocuments({ topic: 'home/3/temp' })) === 4)
  assert.equal(await stack.db.collection('events').countDocuments({ type: 'published' }), 4, 'the event log still holds each event once')

  const usage: [string[], RegExp][] = [
    [[], /--type: expected an event type \(clientConnected, .*\), got null/],
    [['--type', 'published', '--topic', 'a/#/b'], /--topic: "#" must be a whole level/],
    [['--type', 'published', '--handler', 'subscribed/x'], /--handler: "subscribed\/x" does not handle published events/],
    [['--type', 'published', '--since', 'yesterday'], /--since: expected an ISO date/],
  ]
  for (const [args, message] of usage) {
    const run = mqfn(t, 'replay', env, args)
    assert.equal(await run.exited(), 2, args.join(' '))
    assert.match(run.output(), message)
  }
})

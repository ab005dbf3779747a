import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { mqfn, startDev } from './helpers/processes.ts'
import { connect, functionsDir, waitFor } from './helpers/stack.ts'

const version = (v: string, top = '') => `import { defineHandler } from 'mqtt-functions'
${top}
export default defineHandler('published', async (event, ctx) => {
  await ctx.db.collection('seen').insertOne({ topic: event.topic, version: '${v}' })
})
`

test('a dev reload that never finishes loading, or throws at import, is reported and the previous worker keeps serving', async (t) => {
  const dir = await functionsDir({ 'published.ts': version('v1') })
  const { dev, mqttPort, db } = await startDev(t, dir)
  const seen = db.collection<{ topic: string; version: string }>('seen')
  const client = await connect(mqttPort, { clientId: 'dev-bounds' })
  const versionsOf = async (topic: string) => {
    await client.publishAsync(topic, 'x', { qos: 1 })
    await waitFor(`a handler run for ${topic}`, () => seen.findOne({ topic }), 30_000)
    await new Promise((r) => setTimeout(r, 300))
    return (await seen.find({ topic }).toArray()).map((d) => d.version).sort()
  }
  const refusals = () => dev.output().split('the running worker keeps the previous version').length - 1
  assert.deepEqual(await versionsOf('b/1'), ['v1'])

  // a top-level await that never settles while a timer keeps the thread alive: the import is given 10 s
  await writeFile(join(dir, 'published.ts'), version('hangs', 'setInterval(() => {}, 1000)\nawait new Promise(() => {})'))
  await waitFor('the hanging reload refused', () => refusals() === 1, 60_000, 200)
  assert.match(dev.output(), /mqfn dev: not reloaded: .*published\.ts: failed while loading: did not finish loading within 10 s/)
  assert.deepEqual(await versionsOf('b/2'), ['v1'], 'the previous worker still serves')

  // one that nothing keeps alive: Node ends the thread at once (exit code 13)
  await writeFile(join(dir, 'published.ts'), version('settles-never', 'await new Promise(() => {})'))
  await waitFor('the unsettled reload refused', () => refusals() === 2, 60_000, 200)
  assert.match(dev.output(), /mqfn dev: not reloaded: .*published\.ts: failed while loading: its top-level await never settles/)

  await writeFile(join(dir, 'published.ts'), version('throws', "throw new Error('boom at import')"))
  await waitFor('the throwing reload refused', () => refusals() === 3, 60_000, 200)
  assert.match(dev.output(), /mqfn dev: not reloaded: .*published\.ts: failed while loading: boom at import/)
  assert.deepEqual(await versionsOf('b/3'), ['v1'])

  // a type error is printed as file:line: message; the code still runs, so dev reloads
  await writeFile(join(dir, 'published.ts'), version('typed', "const wrong: number = 'text'"))
  await waitFor('the type error', () => /mqfn dev: type error: .*published\.ts:2: Type 'string' is not assignable to type 'number'\./.test(dev.output()), 90_000, 200)
  await waitFor('a reload', () => dev.output().includes('mqfn dev: reloaded functions/'), 60_000, 200)
  assert.deepEqual(await versionsOf('b/4'), ['typed'])

  dev.kill('SIGTERM')
  assert.equal(await dev.exited(), 0, dev.output().slice(-2000))
})

test('mqfn build type-checks functions/ and writes nothing on a type error', async (t) => {
  const dir = await functionsDir({ 'published.ts': version('typed', 'const wrong: number = 42 as string') })
  const build = mqfn(t, 'build', {}, ['--functions', dir, '--out', join(dir, '..', 'out')])
  assert.equal(await build.exited(), 1, build.output())
  assert.match(build.output(), /MQFN_ERR_HANDLER_TYPE: type error: .*published\.ts:2: Conversion of type 'number' to type 'string' may be a mistake/)
  assert.match(build.output(), /mqfn build: \d+ handler file\(s\) failed; nothing written/)
})

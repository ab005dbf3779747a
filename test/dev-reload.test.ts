import assert from 'node:assert/strict'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { startDev } from './helpers/processes.ts'
import { connect, functionsDir, waitFor } from './helpers/stack.ts'

const version = (v: string) => `import { defineHandler } from 'mqtt-functions'
export default defineHandler('published', async (event, ctx) => {
  await ctx.db.collection('seen').insertOne({ topic: event.topic, version: '${v}' })
})
`

test('mqfn dev reloads saved handler files without touching the broker, and keeps the old code when the new does not compile', async (t) => {
  const dir = await functionsDir({ 'published.ts': version('v1') })
  const { dev, mqttPort, db } = await startDev(t, dir)
  const seen = db.collection<{ topic: string; version: string }>('seen')
  const client = await connect(mqttPort, { clientId: 'dev-client' })
  let closes = 0
  client.on('close', () => closes++)
  const versionsOf = async (topic: string) => {
    await client.publishAsync(topic, 'x', { qos: 1 })
    await waitFor(`a handler run for ${topic}`, () => seen.findOne({ topic }))
    await new Promise((r) => setTimeout(r, 300))
    return (await seen.find({ topic }).toArray()).map((d) => d.version).sort()
  }
  const reloads = () => dev.output().split('mqfn dev: reloaded functions/').length - 1

  assert.deepEqual(await versionsOf('x/1'), ['v1'])

  await writeFile(join(dir, 'published.ts'), version('v2'))
  await waitFor('a reload', () => reloads() === 1, 30_000)
  assert.deepEqual(await versionsOf('x/2'), ['v2'])

  await writeFile(join(dir, 'published.ts'), "import { defineHandler } from 'mqtt-functions'\nexport default defineHandler('published', async () => {\n  const = 1\n})\n")
  await waitFor('the compile error', () => dev.output().includes('not reloaded; the running worker keeps the previous version'), 30_000)
  assert.match(dev.output(), /mqfn dev: .*published\.ts: does not compile: .*published\.ts:3:\d+: /)
  assert.deepEqual(await versionsOf('x/3'), ['v2'], 'the previous version still runs')

  await writeFile(join(dir, 'published.ts'), version('v3'))
  await waitFor('a reload', () => reloads() === 2, 30_000)
  await mkdir(join(dir, 'published'), { recursive: true })
  await writeFile(join(dir, 'published', 'extra.ts'), version('extra'))
  // the mkdir may trigger a reload of its own: wait for the one that loaded the new file
  await waitFor('a reload with the new file', () => {
    const out = dev.output()
    const loaded = out.lastIndexOf('"handler":"published/extra"')
    return loaded >= 0 && out.indexOf('mqfn dev: reloaded functions/', loaded) > loaded
  }, 30_000)
  assert.deepEqual(await versionsOf('x/4'), ['extra', 'v3'], 'a new file is picked up')

  const before = reloads()
  await rm(join(dir, 'published', 'extra.ts'))
  await waitFor('a reload', () => reloads() > before, 30_000)
  assert.deepEqual(await versionsOf('x/5'), ['v3'], 'a deleted file is dropped')

  assert.equal(closes, 0, 'the MQTT connection was never dropped')
  dev.kill('SIGTERM')
  assert.equal(await dev.exited(), 0, dev.output().slice(-2000))
})

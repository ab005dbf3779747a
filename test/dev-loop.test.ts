import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { MongoClient } from 'mongodb'
import { freePort } from '../scripts/services.ts'
import { BIN, ready, spawnCaptured, type MqfnProcess } from './helpers/processes.ts'
import { connect, functionsDir, ROOT, unique, waitFor } from './helpers/stack.ts'

/*
 * `mqfn dev` as a daily tool: its Redis and FerretDB keep their data in the project's
 * .mqfn/dev/ on stable ports, so stopping and starting again keeps the event log at the
 * URLs printed the first time. The project is a fresh directory (its cwd); REDIS_URL and
 * MONGO_URL are unset so dev starts its own servers, as for a user.
 */

function startDev(t: TestContext, cwd: string, env: NodeJS.ProcessEnv): MqfnProcess {
  const base = { ...process.env }
  for (const name of ['REDIS_URL', 'MONGO_URL', 'MQFN_AUTH', 'MQFN_HOST']) delete base[name]
  return spawnCaptured(t, [BIN, 'dev'], { cwd, env: { ...base, MQFN_ADMIN_PORT: '0', ...env } })
}

async function readyLines(dev: MqfnProcess): Promise<{ ready: string; redisUrl: string; mongoUrl: string }> {
  await ready(dev, 'export REDIS_URL=', 120_000)
  await waitFor('the whole export line', () => dev.output().includes('MONGO_URL='))
  const m = /^mqfn dev: ready: (.*)\n[^]*^export REDIS_URL=(\S+) MONGO_URL=(\S+)$/m.exec(dev.output()) ?? assert.fail(dev.output())
  return { ready: m[1]!, redisUrl: m[2]!, mongoUrl: m[3]! }
}

test('mqfn dev: start, publish, stop, start again: the event is still there at the same URL', async (t) => {
  const project = join(ROOT, '.mqfn', 'test', unique('devloop'))
  await mkdir(project, { recursive: true })
  t.after(() => rm(project, { recursive: true, force: true }))
  const fns = await functionsDir({})
  const mqttPort = await freePort()
  const env = { MQFN_FUNCTIONS_DIR: fns, MQFN_MQTT_PORT: String(mqttPort), MQFN_WS_PORT: String(await freePort()) }

  const first = startDev(t, project, env)
  const one = await readyLines(first)
  assert.match(one.ready, new RegExp(`^MQTT mqtt://127\\.0\\.0\\.1:${mqttPort}, WebSocket ws://127\\.0\\.0\\.1:\\d+/mqtt, dashboard http://127\\.0\\.0\\.1:\\d+/dashboard\\?token=\\S+$`))
  assert.equal(first.output().split('mqfn dev: ready:').length, 2, 'one ready line')
  assert.doesNotMatch(first.output(), /go: downloading/)
  // authentication is off, so the broker is bound to loopback only
  assert.match(first.output(), new RegExp(`\\[broker\\] broker ready .*"protocol":"mqtt","address":"127\\.0\\.0\\.1","port":${mqttPort}`))
  assert.doesNotMatch(first.output(), /"address":"0\.0\.0\.0"/)
  const ports = JSON.parse(await readFile(join(project, '.mqfn', 'dev', 'ports.json'), 'utf8')) as { redis: number; mongo: number }
  assert.deepEqual([one.redisUrl, one.mongoUrl], [`redis://127.0.0.1:${ports.redis}`, `mongodb://127.0.0.1:${ports.mongo}/`])

  const client = await connect(mqttPort, { clientId: 'dev-loop' })
  await client.publishAsync('sensors/loop/temp', '21.5', { qos: 1 })
  await client.endAsync()
  const mongo = await MongoClient.connect(one.mongoUrl)
  const events = () => mongo.db('mqfn').collection('events')
  const stored = await waitFor('the event in the log', () => events().findOne({ type: 'published', topic: 'sensors/loop/temp' }), 30_000)
  await mongo.close()

  first.kill('SIGINT')
  assert.equal(await first.exited(), 0)
  assert.ok(existsSync(join(project, '.mqfn', 'dev', 'ferretdb')), 'the data directory stays')

  const second = startDev(t, project, env)
  const two = await readyLines(second)
  assert.deepEqual([two.redisUrl, two.mongoUrl], [one.redisUrl, one.mongoUrl], 'the same URLs')
  const again = await MongoClient.connect(two.mongoUrl)
  t.after(() => again.close())
  const kept = await again.db('mqfn').collection('events').findOne({ _id: stored._id })
  assert.equal(kept?.topic, 'sensors/loop/temp')
  second.kill('SIGINT')
  assert.equal(await second.exited(), 0)
})

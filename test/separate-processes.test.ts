import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { MongoClient, type Binary } from 'mongodb'
import { Redis } from 'ioredis'
import { freePort, startRedis } from '../scripts/services.ts'
import { mqfn, type MqfnProcess } from './helpers/processes.ts'
import { functionsDir, recorder, services, unique, waitFor } from './helpers/stack.ts'

const run = promisify(execFile)

function exited(child: MqfnProcess): Promise<number | null> {
  return child.exited()
}

test('mqfn broker and mqfn worker run as two processes; mosquitto_pub reaches a handler and the event log', async (t) => {
  const svc = await services()
  const mqttPort = await freePort()
  const database = unique('procs').replace('-', '_')
  const env = {
    REDIS_URL: svc.redisUrl, MONGO_URL: svc.mongoUrl, MQFN_DATABASE: database, MQFN_PREFIX: `{${unique('p')}}`,
    MQFN_MQTT_PORT: String(mqttPort), MQFN_WS_PORT: '0', MQFN_HOST: '127.0.0.1',
    MQFN_FUNCTIONS_DIR: await functionsDir({ 'published.ts': recorder('published', "{ topic: 'sensors/#' }") }),
  }
  const broker = mqfn(t, 'broker', env)
  const worker = mqfn(t, 'worker', env)
  await waitFor('broker ready', () => broker.output().includes('broker ready'))
  await waitFor('worker ready', () => worker.output().includes('worker ready'))
  assert.notEqual(broker.pid, worker.pid)

  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqttPort), '-t', 'sensors/kitchen/temp', '-m', '21.5', '-q', '1'])
  const mongo = await MongoClient.connect(svc.mongoUrl)
  t.after(() => mongo.close())
  const db = mongo.db(database)
  const call = await waitFor('the handler', () => db.collection<{ event: { id: string; topic: string } }>('calls').findOne({}))
  assert.equal(call.event.topic, 'sensors/kitchen/temp')
  const logged = await db.collection<{ _id: string; type: string; payload: Binary }>('events').findOne({ _id: call.event.id })
  assert.equal(logged?.type, 'published')
  assert.equal(Buffer.from(logged?.payload.buffer ?? []).toString(), '21.5')

  broker.kill('SIGTERM')
  worker.kill('SIGTERM')
  assert.equal(await exited(broker), 0, broker.output())
  assert.equal(await exited(worker), 0, worker.output())
  assert.match(broker.output(), /broker closed/)
  await db.dropDatabase()
})

test('bad configuration exits 1 naming the key, its variable and what was expected', async (t) => {
  const broker = mqfn(t, 'broker', { MQFN_MQTT_PORT: 'abc', MQFN_WS_PATH: 'mqtt' })
  assert.equal(await exited(broker), 1)
  assert.match(broker.output(), /^mqfn broker: MQFN_ERR_CONFIG: Invalid configuration: mqttPort \(env MQFN_MQTT_PORT\): Invalid input: expected number, received NaN \(got "abc"\); wsPath \(env MQFN_WS_PATH\): Invalid string: must start with "\/" \(got "mqtt"\)\n$/)

  const worker = mqfn(t, 'worker', { MQFN_EVENTS: 'published,bogus', MONGO_URL: 'postgres://x' })
  assert.equal(await exited(worker), 1)
  assert.match(worker.output(), /mongoUrl \(env MONGO_URL\): expected a mongodb:\/\/ or mongodb\+srv:\/\/ URL \(got "postgres:\/\/x"\)/)
  assert.match(worker.output(), /events \(env MQFN_EVENTS\): unknown event "bogus"; valid: clientConnected, /)

  const dir = await functionsDir({ 'published.ts': recorder('published') })
  const file = join(dir, '..', 'broker.json')
  await writeFile(file, JSON.stringify({ mqttPort: 1884, colour: 'blue' }))
  const withFile = mqfn(t, 'broker', { MQFN_CONFIG: file })
  assert.equal(await exited(withFile), 1)
  assert.match(withFile.output(), /MQFN_ERR_CONFIG: Invalid configuration: unknown key "colour" in .*broker\.json; valid keys: brokerId, redisUrl, /)
})

test('an unreachable Redis or MongoDB exits 1 naming the URL and its variable', async (t) => {
  const svc = await services()
  const dead = await freePort()
  const broker = mqfn(t, 'broker', { REDIS_URL: `redis://127.0.0.1:${dead}`, MQFN_CONNECT_TIMEOUT_MS: '1000' })
  assert.equal(await exited(broker), 1)
  assert.match(broker.output(), new RegExp(`^mqfn broker: MQFN_ERR_REDIS_UNREACHABLE: Redis is unreachable at redis://127.0.0.1:${dead} \\(set REDIS_URL\\): .*ECONNREFUSED`, 'm'))

  const worker = mqfn(t, 'worker', { REDIS_URL: svc.redisUrl, MONGO_URL: `mongodb://127.0.0.1:${dead}/x`, MQFN_CONNECT_TIMEOUT_MS: '1000' })
  assert.equal(await exited(worker), 1)
  assert.match(worker.output(), new RegExp(`^mqfn worker: MQFN_ERR_MONGO_UNREACHABLE: MongoDB is unreachable at mongodb://127.0.0.1:${dead}/x \\(set MONGO_URL\\): `))
})

test('the broker warns loudly about Redis settings that lose events', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-redis-'))
  const redis = await startRedis({ dir })
  t.after(async () => {
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const admin = new Redis(`redis://127.0.0.1:${redis.port}`)
  await admin.config('SET', 'maxmemory-policy', 'allkeys-lru')
  await admin.config('SET', 'appendonly', 'no')
  admin.disconnect()
  const broker = mqfn(t, 'broker', { REDIS_URL: `redis://127.0.0.1:${redis.port}`, MQFN_MQTT_PORT: '0', MQFN_WS_ENABLED: 'false', MQFN_HOST: '127.0.0.1' })
  await waitFor('broker ready', () => broker.output().includes('broker ready'))
  assert.match(broker.output(), /REDIS SETTINGS: maxmemory-policy is \\"allkeys-lru\\": under memory pressure Redis evicts queue keys and events are lost; set it to noeviction/)
  assert.match(broker.output(), /REDIS SETTINGS: persistence is off \(appendonly no, no save points\): a Redis restart loses every queued event; turn on appendonly/)
  broker.kill('SIGTERM')
  assert.equal(await broker.exited(), 0)
})

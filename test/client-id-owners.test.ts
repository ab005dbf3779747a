import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import type { MqttClient } from 'mqtt'
import { freePort } from '../scripts/services.ts'
import { connack, connected, securityFiles } from './helpers/auth.ts'
import { mqfn, processStack, ready } from './helpers/processes.ts'
import { startStack, unique, waitFor, type Stack } from './helpers/stack.ts'

/*
 * With authentication on, a client id belongs to the user whose session holds it
 * (issue 14 item 6): another user presenting it gets CONNACK 5 (MQTT 5: 0x87) and the
 * running client is not disturbed; the same user's takeover [MQTT-3.1.4-2] still
 * works. The owner record is in Redis, so this holds across a cluster.
 */

const alice = { username: 'alice', password: 'pw-1234' }
const bob = { username: 'bob', password: 'pw-1234' }

async function secured(t: TestContext, policy?: 'owner' | 'username-prefix' | 'any'): Promise<Stack> {
  const files = await securityFiles(t, ['alice', 'bob'], undefined)
  return startStack(t, { functions: {}, noWorker: true, broker: { auth: 'required', ...files, ...(policy ? { clientIdPolicy: policy } : {}) } })
}

function nextMessage(client: MqttClient): Promise<string> {
  return new Promise((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())))
}

/** A round trip through the broker on `client`'s own topic: it is connected and served. */
async function roundTrip(client: MqttClient, label: string): Promise<void> {
  const topic = `echo/${unique('t')}`
  await client.subscribeAsync(topic, { qos: 1 })
  const got = nextMessage(client)
  await client.publishAsync(topic, label, { qos: 1 })
  assert.equal(await got, label)
}

function redisFor(t: TestContext, url: string): Redis {
  const redis = new Redis(url)
  t.after(() => redis.quit())
  return redis
}

test('owner (default): another user is refused with 5 / 0x87 and the holder stays; the owner takes over; a clean session frees the id when it ends', async (t) => {
  const stack = await secured(t)
  const port = stack.mqttPort
  const first = await connected(t, port, { clientId: 'shared id', ...alice })
  let firstClosed = false
  first.on('close', () => (firstClosed = true))

  assert.equal(await connack(port, { clientId: 'shared id', ...bob }), 5)
  assert.equal(await connack(port, { clientId: 'shared id', ...bob, protocolVersion: 5 }), 0x87)
  await roundTrip(first, 'still here')
  assert.equal(firstClosed, false, 'the running client was not disturbed')

  // the owner's own takeover [MQTT-3.1.4-2]
  const second = await connected(t, port, { clientId: 'shared id', ...alice })
  await waitFor('the first connection closed by the takeover', () => firstClosed)
  await roundTrip(second, 'taken over')
  // the old connection's close did not free the id of the new one
  assert.equal(await connack(port, { clientId: 'shared id', ...bob }), 5)

  const redis = redisFor(t, stack.services.redisUrl)
  const key = `${stack.prefix}:client-owner:shared id`
  assert.equal(await redis.hget(key, 'user'), 'alice')
  const leased = await redis.pttl(key)
  assert.ok(leased > 0 && leased <= 5 * 60_000, `a connected clean session's record is a lease: ${leased} ms`)
  await second.endAsync()
  await waitFor('the record removed with the clean session', async () => (await redis.exists(key)) === 0, 5000)
  assert.equal(await connack(port, { clientId: 'shared id', ...bob }), 0, 'no session holds the id any more')
})

test('owner: a persistent session keeps its id after the connection, for sessionExpirySeconds (3.1.1) or its expiry interval (MQTT 5)', async (t) => {
  const stack = await secured(t)
  const port = stack.mqttPort
  const redis = redisFor(t, stack.services.redisUrl)
  const kept = await connected(t, port, { clientId: 'kept-311', clean: false, ...alice })
  await kept.endAsync()
  const v5 = await connected(t, port, { clientId: 'kept-5', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 30 }, ...alice })
  await v5.endAsync()

  assert.equal(await connack(port, { clientId: 'kept-311', ...bob }), 5)
  assert.equal(await connack(port, { clientId: 'kept-5', ...bob, protocolVersion: 5 }), 0x87)
  // a 3.1.1 session lives until sessionExpirySeconds (7 days by default) removes it
  const week = 7 * 24 * 3600_000
  const kept311 = await redis.pttl(`${stack.prefix}:client-owner:kept-311`)
  assert.ok(kept311 > week - 60_000 && kept311 <= week + 90_000, `kept as long as the session, 7 days and a minute's margin: ${kept311} ms`)
  const ttl = await redis.pttl(`${stack.prefix}:client-owner:kept-5`)
  assert.ok(ttl > 30_000 && ttl <= 90_000, `the session's 30 s and a minute's margin: ${ttl} ms`)
  // the owner comes back to its session
  assert.equal(await connack(port, { clientId: 'kept-311', clean: false, ...alice }), 0)
})

test('username-prefix: ids are <username>:<suffix>; any: the old free-for-all', async (t) => {
  const prefixed = await secured(t, 'username-prefix')
  for (const [clientId, code] of [['alice:phone', 0], ['alice:', 5], ['alice', 5], ['bob:phone', 5], ['alice:a:b', 5], ['alic:e', 5]] as const) {
    assert.equal(await connack(prefixed.mqttPort, { clientId, ...alice }), code, clientId)
  }
  const open = await secured(t, 'any')
  const victim = await connected(t, open.mqttPort, { clientId: 'anyone', ...alice })
  const kicked = new Promise<void>((resolve) => victim.once('close', () => resolve()))
  assert.equal(await connack(open.mqttPort, { clientId: 'anyone', ...bob }), 0)
  await kicked
})

test('owner across two brokers of a cluster (MQFN_PERSISTENCE=redis)', async (t) => {
  const stack = await processStack(t, {})
  const files = await securityFiles(t, ['alice', 'bob'], undefined)
  const ports = [stack.mqttPort, await freePort()]
  const brokers = ports.map((port, i) => mqfn(t, 'broker', stack.brokerEnv({
    MQFN_MQTT_PORT: String(port), MQFN_BROKER_ID: unique(`owner${i}`), MQFN_PERSISTENCE: 'redis',
    MQFN_AUTH: 'required', MQFN_USERS_FILE: files.usersFile,
  })))
  await Promise.all(brokers.map((b) => ready(b, 'broker ready', 60_000)))
  const [a, b] = ports as [number, number]

  const holder = await connected(t, a, { clientId: 'fleet-7', ...alice })
  let holderClosed = false
  holder.on('close', () => (holderClosed = true))
  assert.equal(await connack(b, { clientId: 'fleet-7', ...bob }), 5)
  assert.equal(await connack(b, { clientId: 'fleet-7', ...bob, protocolVersion: 5 }), 0x87)

  // a message from broker B still reaches the holder on broker A
  await holder.subscribeAsync('cluster/ping', { qos: 1 })
  const got = nextMessage(holder)
  const other = await connected(t, b, { clientId: 'bob-1', ...bob })
  await other.publishAsync('cluster/ping', 'across', { qos: 1 })
  assert.equal(await got, 'across')
  assert.equal(holderClosed, false)

  // the owner moves to broker B: the takeover crosses the cluster
  const moved = await connected(t, b, { clientId: 'fleet-7', ...alice })
  await waitFor('the connection on A closed', () => holderClosed, 10_000)
  await roundTrip(moved, 'moved')
  assert.equal(await connack(a, { clientId: 'fleet-7', ...bob }), 5)
})

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { clusterNames } from '../broker/cluster/persistence.ts'
import { freePort } from '../scripts/services.ts'
import { assertNothingLost, COUNTING_HANDLER, type Load } from './helpers/load.ts'
import { mqfn, processStack, ready, type MqfnProcess, type ProcessStack } from './helpers/processes.ts'
import { connect, sleep, unique, waitFor } from './helpers/stack.ts'

/*
 * Brokers as a cluster (docs/cluster.md): `mqfn broker` processes with
 * MQFN_PERSISTENCE=redis and one prefix share sessions, subscriptions, retained
 * messages and offline queues through Redis; one `mqfn worker` writes the event log
 * and presence.
 */

interface Member {
  id: string
  port: number
  proc: MqfnProcess
}

async function startCluster(t: TestContext, size: number, functions: Record<string, string> = {}): Promise<{ stack: ProcessStack; brokers: Member[]; worker: MqfnProcess }> {
  const stack = await processStack(t, functions)
  const worker = mqfn(t, 'worker', stack.workerEnv())
  const brokers: Member[] = []
  for (const name of ['A', 'B', 'C'].slice(0, size)) {
    const port = await freePort()
    const id = unique(`broker${name}`)
    brokers.push({ id, port, proc: mqfn(t, 'broker', stack.brokerEnv({ MQFN_MQTT_PORT: String(port), MQFN_BROKER_ID: id, MQFN_PERSISTENCE: 'redis' })) })
  }
  // generous: on a loaded machine, starting four node processes at once takes a while
  await Promise.all([ready(worker, 'worker ready', 90_000), ...brokers.map((b) => ready(b.proc, 'broker ready', 90_000))])
  return { stack, brokers, worker }
}

interface Received {
  topic: string
  payload: string
  qos: number
  retain: boolean
}

/** A client whose `message` listener is on before CONNACK: offline messages follow it at once. */
async function listening(t: TestContext, port: number, opts: IClientOptions = {}): Promise<{ client: MqttClient; got: Received[]; sessionPresent: boolean }> {
  const client = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, ...opts })
  t.after(() => client.endAsync(true))
  const got: Received[] = []
  client.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString('hex'), qos: packet.qos, retain: packet.retain }))
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
  })
  return { client, got, sessionPresent: connack.sessionPresent }
}

/**
 * Waits until exactly `count` messages are queued in Redis for a persistent session.
 * aedes acknowledges a QoS 1 PUBLISH before it queues the message, so without this a
 * session reconnecting at once may get the last message live, ahead of the queued ones.
 */
async function queued(t: TestContext, stack: ProcessStack, clientId: string, count: number): Promise<void> {
  const redis = new Redis(stack.services.redisUrl)
  t.after(() => redis.quit())
  const key = `${clusterNames(stack.prefix).keyPrefix}outgoing:${encodeURIComponent(clientId)}`
  await waitFor(`${count} messages queued for ${clientId}`, async () => (await redis.llen(key)) === count, 30_000, 100)
}

/** Waits for `count` messages, then a moment more, so that a duplicate would be seen too. */
async function exactly(got: Received[], count: number, what: string): Promise<void> {
  await waitFor(what, () => got.length >= count, 30_000)
  await sleep(500)
  assert.equal(got.length, count, `${what}: no more than ${count}`)
}

test('two brokers share messages, retained messages, sessions and presence', async (t) => {
  const outer = t
  const { stack, brokers, worker } = await startCluster(t, 2)
  const [a, b] = brokers as [Member, Member]

  await t.test('a client on A receives what a client on B publishes, at QoS 0, 1 and 2', async (t) => {
    const topic = unique('x')
    const sub = await listening(t, a.port)
    assert.deepEqual((await sub.client.subscribeAsync(`${topic}/#`, { qos: 2 })).map((g) => g.qos), [2])
    const pub = await connect(b.port)
    const sent: Received[] = []
    for (const qos of [0, 1, 2] as const) {
      for (let i = 0; i < 20; i++) {
        // every byte value somewhere, and a zero byte first: payloads are bytes, not text
        const payload = Buffer.concat([Buffer.from([0, i, 0xff]), randomBytes(13 * i)])
        await pub.publishAsync(`${topic}/q${qos}`, payload, { qos })
        sent.push({ topic: `${topic}/q${qos}`, payload: payload.toString('hex'), qos, retain: false })
      }
    }
    await exactly(sub.got, 60, 'the 60 messages published through B')
    // one publisher, one topic per QoS: the order within each is kept [MQTT-4.6.0-6]
    for (const qos of [0, 1, 2]) assert.deepEqual(sub.got.filter((m) => m.qos === qos), sent.filter((m) => m.qos === qos))
  })

  await t.test('a retained message set through A is received on subscribe through B', async (t) => {
    const root = unique('r')
    const topic = `${root}/kitchen/state`
    const payload = Buffer.from([0, 1, 2, 0x80, 0xfe, 0xff])
    const setter = await connect(a.port)
    // QoS 2: aedes stores a retained message before PUBREC; at QoS 1 it acknowledges first
    await setter.publishAsync(topic, payload, { qos: 2, retain: true })
    // an exact topic reads one Redis field, a wildcard scans them: both paths. Subscribed
    // at QoS 2: aedes 1.2 does not downgrade a retained message matched by a wildcard to
    // the granted QoS (lib/client.js looks the subscription up by topic), with any persistence
    for (const filter of [topic, `${root}/#`]) {
      const sub = await listening(t, b.port)
      await sub.client.subscribeAsync(filter, { qos: 2 })
      await exactly(sub.got, 1, `the retained message on subscribe to ${filter}`)
      assert.deepEqual(sub.got[0], { topic, payload: payload.toString('hex'), qos: 2, retain: true })
    }
  })

  await t.test('a persistent session left on A gets exactly the messages published through B meanwhile, on B', async (t) => {
    const clientId = unique('ps')
    const topic = unique('ps')
    const first = await connect(a.port, { clientId, clean: false })
    await first.subscribeAsync(`${topic}/#`, { qos: 1 })
    await first.endAsync()
    const pub = await connect(b.port)
    const sent: Received[] = []
    for (let i = 0; i < 10; i++) {
      const payload = Buffer.from(`offline ${i} ✓`)
      await pub.publishAsync(`${topic}/m`, payload, { qos: 1 })
      sent.push({ topic: `${topic}/m`, payload: payload.toString('hex'), qos: 1, retain: false })
    }
    await queued(t, stack, clientId, 10)
    const again = await listening(t, b.port, { clientId, clean: false })
    assert.equal(again.sessionPresent, true, 'B knows the session A held')
    await exactly(again.got, 10, 'the 10 offline messages')
    assert.deepEqual(again.got, sent)
  })

  await t.test('the same client id on B takes over its connection on A; presence shows it online on B only', async (t) => {
    const clientId = unique('tk')
    const old = await listening(t, a.port, { clientId })
    const closed = new Promise<void>((resolve) => old.client.once('close', () => resolve()))
    await listening(t, b.port, { clientId })
    await closed

    const events = stack.db.collection<{ type: string; brokerId: string; reason?: string; epoch: number }>('events')
    const ended = await waitFor('clientDisconnecting and clientDisconnected from A in the event log', async () => {
      const docs = await events.find({ clientId, brokerId: a.id, type: { $in: ['clientDisconnecting', 'clientDisconnected'] } }).toArray()
      return docs.length === 2 ? docs : undefined
    }, 30_000, 250)
    assert.deepEqual(ended.map((e) => [e.type, e.reason]).sort(), [['clientDisconnected', 'takeover'], ['clientDisconnecting', 'takeover']])
    const connected = await waitFor('clientConnected on A and on B in the event log', async () => {
      const docs = await events.find({ clientId, type: 'clientConnected' }).toArray()
      return docs.length === 2 ? docs : undefined
    }, 30_000, 250)
    const onA = connected.find((e) => e.brokerId === a.id)
    const onB = connected.find((e) => e.brokerId === b.id)
    assert.ok(onA && onB && onA.epoch < onB.epoch, 'the connection on B has the larger epoch')

    const presence = stack.db.collection<{ _id: string; online: boolean; brokerId: string; epoch: number }>('presence')
    await waitFor('presence online on B', async () => {
      const doc = await presence.findOne({ _id: clientId })
      return doc?.online === true && doc.brokerId === b.id
    }, 30_000, 250)
    const docs = await presence.find({ _id: clientId }).toArray()
    assert.deepEqual(docs.map((d) => ({ online: d.online, brokerId: d.brokerId, epoch: d.epoch })), [{ online: true, brokerId: b.id, epoch: onB.epoch }])
  })

  await t.test('a broker restarted on its port finds its persistent sessions and retained messages in Redis', async () => {
    const clientId = unique('rs')
    const topic = unique('rs')
    const first = await connect(a.port, { clientId, clean: false })
    await first.subscribeAsync(`${topic}/#`, { qos: 1 })
    const retainedTopic = `${unique('rs')}/state`
    const retained = Buffer.from([0xde, 0xad, 0, 0xbe, 0xef])
    await (await connect(a.port)).publishAsync(retainedTopic, retained, { qos: 2, retain: true })
    await first.endAsync()
    a.proc.kill('SIGTERM')
    assert.equal(await a.proc.exited(), 0, a.proc.output())
    // the outer test's context: the new process outlives this subtest
    a.proc = mqfn(outer, 'broker', stack.brokerEnv({ MQFN_MQTT_PORT: String(a.port), MQFN_BROKER_ID: a.id, MQFN_PERSISTENCE: 'redis' }))
    await ready(a.proc, 'broker ready', 90_000)

    // published through the new process itself: it learnt the subscription from Redis at start
    const pub = await connect(a.port)
    const sent: Received[] = []
    for (let i = 0; i < 5; i++) {
      const payload = Buffer.from(`after restart ${i}`)
      await pub.publishAsync(`${topic}/m`, payload, { qos: 1 })
      sent.push({ topic: `${topic}/m`, payload: payload.toString('hex'), qos: 1, retain: false })
    }
    await queued(outer, stack, clientId, 5)
    const again = await listening(outer, a.port, { clientId, clean: false })
    assert.equal(again.sessionPresent, true)
    await exactly(again.got, 5, 'the 5 messages queued after the restart')
    assert.deepEqual(again.got, sent)
    const late = await listening(outer, a.port)
    await late.client.subscribeAsync(retainedTopic, { qos: 1 })
    await exactly(late.got, 1, 'the retained message set before the restart')
    assert.deepEqual(late.got[0], { topic: retainedTopic, payload: retained.toString('hex'), qos: 1, retain: true })
  })

  for (const m of [...brokers, { proc: worker }]) m.proc.kill('SIGTERM')
  for (const m of [...brokers, { proc: worker }]) assert.equal(await m.proc.exited(), 0, m.proc.output())
})

test('a broker killed with SIGKILL under QoS 1 load: nothing acknowledged is lost; the other two keep serving', async (t) => {
  const { stack, brokers, worker } = await startCluster(t, 3, { 'published.ts': COUNTING_HANDLER })
  const [a, b, c] = brokers as [Member, Member, Member]
  const topicPrefix = unique('load')

  const subscriberId = unique('sub')
  const received = new Set<string>()
  const subscribe = async () => {
    const sub = await listening(t, c.port, { clientId: subscriberId, clean: false })
    sub.client.on('message', (_topic, payload) => received.add(payload.toString()))
    return sub
  }
  const sub = await subscribe()
  await sub.client.subscribeAsync(`${topicPrefix}/#`, { qos: 1 })

  const clients = 4
  const window = 50
  const load = publishWithFailover({ servers: [a.port, b.port], clients, perClient: 1000, window, topicPrefix })
  t.after(() => Promise.all(load.clients.map((cl) => cl.endAsync(true))))
  await waitFor('a quarter of the messages acknowledged', () => load.acked.size >= 1000, 120_000)
  a.proc.kill('SIGKILL')
  assert.equal(await a.proc.exited(), null)
  assert.ok(load.acked.size < 4000, 'killed mid-load')

  // B and C serve on: a message through B reaches a subscriber on C (under the load's
  // prefix: the event log check below counts every published event there as handled)
  const probe = await listening(t, c.port)
  await probe.client.subscribeAsync(`${topicPrefix}/probe`, { qos: 1 })
  await (await connect(b.port)).publishAsync(`${topicPrefix}/probe`, 'still here', { qos: 1 })
  await exactly(probe.got, 1, 'the probe published through B after the kill')

  // the publishers moved to B and resent what A had not acknowledged
  await waitFor('every message acknowledged', () => load.acked.size === 4000, 240_000, 200)
  await assertNothingLost(stack.db, load, { messages: 4000 })

  // With Redis persistence a QoS 1 message is forwarded (offline queues, the shared
  // emitter) before its PUBACK, so every message A acknowledged reached C's
  // subscriber or its offline queue; it gets the queued ones on its next connection.
  await sub.client.endAsync()
  await subscribe()
  await waitFor('every acknowledged message at the subscriber on C', () => [...load.acked].every((id) => received.has(id)), 30_000, 200)
  assert.equal([...load.acked].filter((id) => !received.has(id)).length, 0)

  for (const m of [b, c, { proc: worker }]) m.proc.kill('SIGTERM')
  for (const m of [b, c, { proc: worker }]) assert.equal(await m.proc.exited(), 0, m.proc.output())
})

/**
 * MQTT.js publishers with persistent sessions, given every broker's address: when
 * theirs dies they connect to the next one and resend what was not acknowledged.
 * Topics are `<topicPrefix>/<clientId>`, payloads `<clientId>:<n>` (as helpers/load.ts).
 */
function publishWithFailover(opts: { servers: number[]; clients: number; perClient: number; window: number; topicPrefix: string }): Load {
  const acked = new Set<string>()
  const clients: MqttClient[] = []
  const runs: Promise<void>[] = []
  for (let c = 0; c < opts.clients; c++) {
    const clientId = `${opts.topicPrefix}-c${c}`
    const servers = opts.servers.map((port) => ({ host: '127.0.0.1', port, protocol: 'mqtt' as const }))
    const client = mqtt.connect({ servers, clientId, clean: false, reconnectPeriod: 100, connectTimeout: 2000 })
    client.on('error', () => {})
    clients.push(client)
    let next = 0
    let settled = 0
    runs.push(new Promise<void>((resolve) => {
      const pump = () => {
        while (next - settled < opts.window && next < opts.perClient) {
          const id = `${clientId}:${next++}`
          client.publish(`${opts.topicPrefix}/${clientId}`, id, { qos: 1 }, (err) => {
            if (!err) acked.add(id)
            if (++settled === opts.perClient) resolve()
            else pump()
          })
        }
      }
      pump()
    }))
  }
  return { acked, done: Promise.all(runs).then(() => undefined), clients, topicPrefix: opts.topicPrefix }
}

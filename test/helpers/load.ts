import assert from 'node:assert/strict'
import { after } from 'node:test'
import type { Db } from 'mongodb'
import mqtt, { type MqttClient } from 'mqtt'
import { unique, waitFor } from './stack.ts'

/**
 * A handler for load tests: one `done` document per event id; a second run of the
 * same event is recorded in `reruns`. Inserts only: FerretDB 1.24 scans the whole
 * collection for an update or delete by _id, which makes counters quadratic.
 */
export const COUNTING_HANDLER = `import { defineHandler } from 'mqtt-functions'
export default defineHandler('published', async (event, ctx) => {
  try {
    await ctx.db.collection('done').insertOne({ _id: event.id, payload: event.payload.toString() })
  } catch (err) {
    if (err.code !== 11000) throw err
    await ctx.db.collection('reruns').insertOne({ eventId: event.id, attempt: ctx.attempt })
  }
})
`

export interface Load {
  /** `<clientId>:<n>` of every message whose PUBACK arrived. */
  acked: Set<string>
  /** Resolves when every message is acknowledged. */
  done: Promise<void>
  clients: MqttClient[]
  topicPrefix: string
}

export interface LoadOptions {
  port: number
  clients?: number
  perClient?: number
  /** Unacknowledged messages per client at once. */
  window?: number
  /** Topics are `<topicPrefix>/<clientId>`, client ids `<topicPrefix>-c<n>`. @defaultValue random */
  topicPrefix?: string
}

/**
 * Several MQTT.js clients publishing QoS 1 with persistent sessions (clean off), so
 * they reconnect by themselves and resend what was not acknowledged.
 */
export function startLoad(opts: LoadOptions): Load {
  const count = opts.clients ?? 4
  const perClient = opts.perClient ?? 1000
  const window = opts.window ?? 50
  const topicPrefix = opts.topicPrefix ?? unique('load')
  const acked = new Set<string>()
  const clients: MqttClient[] = []
  const runs: Promise<void>[] = []
  for (let c = 0; c < count; c++) {
    const clientId = `${topicPrefix}-c${c}`
    const client = mqtt.connect({ host: '127.0.0.1', port: opts.port, clientId, clean: false, reconnectPeriod: 100, connectTimeout: 2000 })
    client.on('error', () => {})
    clients.push(client)
    runs.push(new Promise<void>((resolve) => {
      let next = 0
      let inflight = 0
      let finished = 0
      const pump = () => {
        while (inflight < window && next < perClient) {
          const id = `${clientId}:${next++}`
          inflight++
          client.publish(`${topicPrefix}/${clientId}`, id, { qos: 1 }, (err) => {
            inflight--
            if (!err) acked.add(id)
            if (++finished === perClient) resolve()
            else pump()
          })
        }
      }
      pump()
    }))
  }
  after(() => Promise.all(clients.map((c) => new Promise<void>((r) => c.end(true, {}, () => r())))))
  return { acked, done: Promise.all(runs).then(() => undefined), clients, topicPrefix }
}

/**
 * The promise made for acknowledged messages: every acknowledged message is in the
 * event log (resends may add more documents, never fewer), every logged event was
 * handled exactly once per handler as counted by `done`, and the dead letters are as
 * expected.
 */
export async function assertNothingLost(db: Db, load: Load, expected: { messages: number; deadLetters?: number }, waitMs = 120_000): Promise<{ events: number }> {
  assert.equal(load.acked.size, expected.messages, 'every message acknowledged')
  const events = db.collection<{ _id: string; payload: { buffer: Uint8Array } }>('events')
  const filter = { type: 'published', topic: { $regex: `^${load.topicPrefix}/` } }
  await waitFor('every acknowledged message in the event log, and handled', async () => {
    const n = await events.countDocuments(filter)
    return n >= load.acked.size && (await db.collection('done').countDocuments()) === n
  }, waitMs, 500)
  const logged = await events.find(filter).project<{ _id: string; payload: { buffer: Uint8Array } }>({ payload: 1 }).toArray()
  const payloads = new Set(logged.map((e) => Buffer.from(e.payload.buffer).toString()))
  const missing = [...load.acked].filter((id) => !payloads.has(id))
  assert.deepEqual(missing, [], 'acknowledged messages missing from the event log')
  assert.equal(new Set(logged.map((e) => e._id)).size, logged.length, 'no event id twice')
  const done = await db.collection<{ _id: string }>('done').find({}).project<{ _id: string }>({ _id: 1 }).toArray()
  const loggedIds = new Set(logged.map((e) => e._id))
  assert.equal(done.filter((d) => loggedIds.has(d._id)).length, logged.length, 'every logged event handled')
  assert.equal(await db.collection('deadletters').countDocuments(), expected.deadLetters ?? 0, 'dead letters')
  return { events: logged.length }
}

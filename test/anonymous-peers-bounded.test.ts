import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createConnection } from 'node:net'
import { test } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { createBroker } from '../broker/broker.ts'
import { createLogger } from '../common/logger.ts'
import { connected, securityFiles } from './helpers/auth.ts'
import { startStack, unique, waitFor } from './helpers/stack.ts'

/*
 * Anonymous network peers cannot make the system store unbounded data (issue 14
 * item 10): per address and window, connection errors past a burst and every
 * connection the connect-rate limit closes are counted into one summary event per
 * address and reason, and into /metrics, instead of one stored event each.
 */

const BURST = 5
const TOKEN = randomBytes(16).toString('hex')
const NO_CREDENTIALS = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: '', clean: true, keepalive: 0 })

/** One cheap socket from `localAddress`: sends `bytes` (if any), resolves with whether a CONNACK came before the close. */
function probe(port: number, localAddress: string, bytes?: Buffer): Promise<'connack' | 'closed'> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port, localAddress })
    let answered = false
    socket.on('connect', () => { if (bytes) socket.write(bytes) })
    socket.on('data', () => (answered = true))
    socket.on('error', () => {})
    socket.on('close', () => resolve(answered ? 'connack' : 'closed'))
  })
}

async function many(count: number, atOnce: number, one: () => Promise<'connack' | 'closed'>): Promise<{ connack: number; closed: number }> {
  const tally = { connack: 0, closed: 0 }
  let started = 0
  await Promise.all(Array.from({ length: atOnce }, async () => {
    while (started < count) {
      started++
      tally[await one()]++
    }
  }))
  return tally
}

interface Logged { remoteAddress?: string; reason: string; count?: number; clientId: string | null; error: { message: string } }

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return Number(line?.split(' ')[1])
}

test('1,200 sockets that never authenticate and 300 past the connect rate: a few events per address, the rest counted in summaries and /metrics', async (t) => {
  const files = await securityFiles(t, ['device'], undefined)
  const stack = await startStack(t, {
    functions: {},
    broker: {
      auth: 'required', ...files, adminToken: TOKEN, clientConnectTimeoutMs: 500,
      connectRatePerIp: 10_000, connectionErrorsPerIp: BURST, connectionErrorWindowMs: 1000,
    },
  })
  // a second broker on the same queues with a low connect rate: its summaries reach the same event log
  const strict = await createBroker({ ...stack.brokerConfig, brokerId: unique('strict'), mqttPort: 0, adminPort: 0, connectRatePerIp: 20 }, createLogger('test', 'silent'))
  t.after(() => strict.close())
  const port = stack.mqttPort
  const strictPort = strict.listeners.find((l) => l.protocol === 'mqtt')?.port as number

  const started = performance.now()
  // CONNECTs without credentials: CONNACK 5
  const refused = await many(1000, 100, () => probe(port, '127.0.0.5', NO_CREDENTIALS))
  // sockets that never send CONNECT: closed by the connect timeout
  const silent = await many(200, 200, () => probe(port, '127.0.0.6'))
  // all at once against 20 a second: most are closed before anything is read
  const flood = await many(300, 300, () => probe(strictPort, '127.0.0.7', NO_CREDENTIALS))
  const seconds = (performance.now() - started) / 1000
  assert.deepEqual(refused, { connack: 1000, closed: 0 })
  assert.equal(silent.closed, 200)
  assert.equal(flood.connack + flood.closed, 300)
  assert.ok(flood.closed >= 100, `the rate closed most of the flood (${JSON.stringify(flood)})`)

  // a device with credentials is served meanwhile
  const device = await connected(t, port, { clientId: 'device-1', username: 'device', password: 'pw-1234' })
  await device.publishAsync('still/served', 'yes', { qos: 1 })

  const events = stack.db.collection<Logged & { type: string }>('events')
  const counted = (docs: Logged[]) => docs.reduce((n, e) => n + (e.count ?? 1), 0)
  const accounted = (address: string, sockets: number) => waitFor(`the ${sockets} sockets of ${address} accounted for`, async () => {
    const docs = await events.find({ type: 'connectionError', remoteAddress: address }).toArray()
    return counted(docs) >= sockets ? docs : null
  }, 30_000, 500)
  const fromRefused = await accounted('127.0.0.5', 1000)
  const fromSilent = await accounted('127.0.0.6', 200)
  const fromFlood = await accounted('127.0.0.7', 300)

  // exactly one count per socket, whichever way it was recorded
  assert.equal(counted(fromRefused), 1000)
  assert.equal(counted(fromSilent), 200)
  assert.equal(counted(fromFlood), 300)
  const windows = Math.ceil(seconds) + 2
  for (const [docs, label] of [[fromRefused, '127.0.0.5'], [fromSilent, '127.0.0.6'], [fromFlood, '127.0.0.7']] as const) {
    const single = docs.filter((e) => e.count === undefined)
    assert.ok(single.length <= BURST * windows, `${label}: ${single.length} events one by one in ~${windows} windows`)
    // at most one summary per address, reason and window
    assert.ok(docs.length - single.length <= 2 * windows, `${label}: ${docs.length - single.length} summaries`)
  }
  assert.ok(fromRefused.length < 1000 / 4, `${fromRefused.length} events stored for 1,000 refused CONNECTs`)
  for (const e of fromRefused) assert.equal(e.reason, 'not-authorized')
  for (const e of fromSilent) assert.equal(e.reason, 'connect-timeout')
  const summary = fromSilent.find((e) => e.count !== undefined)
  assert.match(summary?.error.message ?? '', /^\d+ more connection errors \(connect-timeout\) from 127\.0\.0\.6 in 1 s, past the 5 recorded one by one \(MQFN_CONNECTION_ERRORS_PER_IP\)$/)
  const rateSummaries = fromFlood.filter((e) => e.error.message.startsWith('connectRatePerIp exceeded'))
  assert.equal(rateSummaries.reduce((n, e) => n + (e.count ?? 0), 0), flood.closed, 'every connection the rate closed is in a summary')
  for (const e of rateSummaries) assert.equal(e.error.message, `connectRatePerIp exceeded: ${e.count} connections from 127.0.0.7 closed in 1 s, more than 20 a second (MQFN_CONNECT_RATE_PER_IP)`)

  const metrics = (name: string) => metric(stack.broker.adminPort as number, name)
  assert.equal(await metrics('mqfn_broker_auth_failures_total'), 1000, 'summarised refusals still count as failed logins')
  const summarised = [...fromRefused, ...fromSilent].filter((e) => e.count !== undefined).reduce((n, e) => n + (e.count ?? 0), 0)
  assert.equal(await metrics('mqfn_broker_connection_errors_summarised_total'), summarised)
  assert.equal(await metric(strict.adminPort as number, 'mqfn_broker_connect_rate_refused_total'), flood.closed)
})

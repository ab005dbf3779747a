import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import mqtt from 'mqtt'
import { EVENT_TYPES } from '../common/event-types.ts'
import { startRedis } from '../scripts/services.ts'
import { mqfn, processStack, ready, type MqfnProcess } from './helpers/processes.ts'
import { connect, startStack, waitFor } from './helpers/stack.ts'

const TOKEN = randomBytes(24).toString('hex')

/** The port from a process's "admin server listening" log line. */
async function adminPort(p: MqfnProcess): Promise<number> {
  await ready(p, 'admin server listening')
  const line = p.output().split('\n').find((l) => l.includes('admin server listening')) as string
  return (JSON.parse(line) as { adminPort: number }).adminPort
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, { headers, redirect: 'manual' })
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** The value of one sample in a Prometheus text exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]))
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(m[3])
  }
  return undefined
}

const HANDLER = `import { defineHandler } from 'mqtt-functions'
export default defineHandler('published', async (event, ctx) => {
  await ctx.db.collection('seen').insertOne({ _id: event.id, topic: event.topic })
})
`

test('health answers anyone; metrics need the token; 5 QoS 1 publishes count 5 on the broker and 5 handler runs on the worker', async (t) => {
  const stack = await processStack(t, { 'published.ts': HANDLER })
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_ADMIN_TOKEN: TOKEN }))
  await ready(broker, 'broker ready')
  const worker = mqfn(t, 'worker', stack.workerEnv({ MQFN_ADMIN_TOKEN: TOKEN }))
  await ready(worker, 'worker ready')
  const ports = { broker: await adminPort(broker), worker: await adminPort(worker) }

  for (const [role, port] of Object.entries(ports)) {
    for (const path of ['/healthz', '/readyz']) {
      const res = await get(port, path)
      assert.equal(res.status, 200, `${role} ${path}`)
      assert.deepEqual(await res.json(), { status: 'ok' }, `${role} ${path} says nothing but its status`)
    }
    const anonymous = await get(port, '/metrics')
    assert.equal(anonymous.status, 401, `${role} /metrics without a token`)
    assert.doesNotMatch(await anonymous.text(), /mqfn_/)
    const wrong = await get(port, '/metrics', bearer(TOKEN.replace(/.$/, (c) => (c === '0' ? '1' : '0'))))
    assert.equal(wrong.status, 401, `${role} /metrics with a wrong token`)
    assert.doesNotMatch(await wrong.text(), /mqfn_/)
    assert.equal((await get(port, '/metrics', bearer('short'))).status, 401, `${role} /metrics with a token of another length`)
  }
  assert.equal((await get(ports.worker, `/dashboard?token=wrong-${TOKEN}`)).status, 401, 'the dashboard refuses a wrong ?token=')

  const client = await connect(stack.mqttPort, { clientId: 'metrics-client' })
  for (let i = 0; i < 5; i++) await client.publishAsync(`sensors/m/${i}`, `${i}`, { qos: 1 })

  const workerMetrics = async () => {
    const res = await get(ports.worker, '/metrics', bearer(TOKEN))
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    return res.text()
  }
  const handled = await waitFor('5 handler runs in the worker metrics', async () => {
    const text = await workerMetrics()
    return sample(text, 'mqfn_worker_handler_duration_seconds_count', { handler: 'published', outcome: 'ok' }) === 5 ? text : undefined
  }, 30_000, 250)
  assert.equal(sample(handled, 'mqfn_worker_handler_duration_seconds_count', { handler: 'published', outcome: 'error' }), undefined, 'no failed run')
  assert.equal(sample(handled, 'mqfn_worker_dead_letters_total'), undefined, 'no dead letter')
  for (const queue of [...EVENT_TYPES, 'outbox']) {
    for (const state of ['waiting', 'active', 'delayed', 'failed']) {
      assert.equal(typeof sample(handled, 'mqfn_worker_queue_jobs', { queue, state }), 'number', `queue depth of ${queue} ${state}`)
    }
  }
  assert.equal(sample(handled, 'mqfn_worker_queue_jobs', { queue: 'published', state: 'failed' }), 0)
  assert.ok((sample(handled, 'mqfn_worker_jobs_completed_total', { queue: 'published' }) ?? 0) >= 1, 'at least one published batch job completed')
  assert.equal(await stack.db.collection('seen').countDocuments(), 5)

  const res = await get(ports.broker, '/metrics', bearer(TOKEN))
  assert.equal(res.status, 200)
  const text = await res.text()
  assert.equal(sample(text, 'mqfn_broker_events_captured_total', { type: 'published' }), 5)
  assert.equal(sample(text, 'mqfn_broker_events_captured_total', { type: 'clientConnected' }), 1)
  assert.equal(sample(text, 'mqfn_broker_connects_total'), 1)
  assert.equal(sample(text, 'mqfn_broker_connections'), 1)
  assert.equal(sample(text, 'mqfn_broker_auth_failures_total'), 0)
  assert.equal(sample(text, 'mqfn_broker_backlog_events'), 0)
  assert.ok((sample(text, 'mqfn_broker_capture_latency_seconds_count') ?? 0) >= 2, 'each write to Redis is timed (ready, clientConnected, publishes)')
  assert.equal(typeof sample(text, 'process_cpu_seconds_total'), 'number', 'default process metrics')
})

test('broker /readyz goes 503 while its Redis is down and 200 once it is back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-readyz-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  let redis = await startRedis({ dir })
  t.after(() => redis.stop('SIGKILL'))
  const stack = await processStack(t, {})
  const broker = mqfn(t, 'broker', stack.brokerEnv({ REDIS_URL: `redis://127.0.0.1:${redis.port}`, MQFN_ADMIN_TOKEN: TOKEN }))
  await ready(broker, 'broker ready')
  const port = await adminPort(broker)
  const readyz = async () => {
    const res = await get(port, '/readyz')
    return { status: res.status, body: (await res.json()) as unknown }
  }
  assert.deepEqual(await readyz(), { status: 200, body: { status: 'ok' } })

  await redis.stop()
  assert.deepEqual(await waitFor('/readyz 503', async () => {
    const r = await readyz()
    return r.status === 503 ? r : undefined
  }, 20_000, 200), { status: 503, body: { status: 'not ready' } })
  assert.equal((await get(port, '/healthz')).status, 200, 'the process itself is alive')

  redis = await startRedis({ dir, port: redis.port })
  await waitFor('/readyz 200 again', async () => (await readyz()).status === 200, 20_000, 200)
  const metrics = await (await get(port, '/metrics', bearer(TOKEN))).text()
  assert.ok((sample(metrics, 'mqfn_broker_redis_reconnects_total') ?? 0) >= 1, 'the reconnects were counted')
})

test('without an admin token everything but health answers 401 naming MQFN_ADMIN_TOKEN; refused logins are counted', async (t) => {
  // the worker has no token; the broker has one, and refuses clients without credentials
  const stack = await startStack(t, { functions: {}, broker: { auth: 'required', jwtSecret: randomBytes(32).toString('hex'), adminToken: TOKEN } })
  const worker = stack.worker.adminPort as number
  for (const path of ['/metrics', '/dashboard', '/dashboard/queues', `/dashboard?token=${TOKEN}`, '/nothing-here']) {
    const res = await get(worker, path, bearer(TOKEN))
    assert.equal(res.status, 401, path)
    assert.equal(await res.text(), 'no admin token is configured: set MQFN_ADMIN_TOKEN (at least 16 characters) to use this endpoint\n', path)
  }
  assert.equal((await get(worker, '/healthz')).status, 200)
  assert.equal((await get(worker, '/readyz')).status, 200)

  const broker = stack.broker.adminPort as number
  assert.equal((await get(broker, '/nothing-here', bearer(TOKEN))).status, 404, 'unknown paths are 404 only behind the token')
  assert.equal((await get(broker, '/nothing-here')).status, 401)
  for (const clientId of ['no-creds-1', 'no-creds-2']) {
    const refused = mqtt.connect({ host: '127.0.0.1', port: stack.mqttPort, reconnectPeriod: 0, clientId })
    const code = await new Promise<number | undefined>((resolve) => refused.once('error', (err) => resolve((err as { code?: number }).code)))
    refused.end(true)
    assert.equal(code, 5, 'CONNACK 5: not authorized')
  }
  const text = await waitFor('2 refused logins counted', async () => {
    const body = await (await get(broker, '/metrics', bearer(TOKEN))).text()
    return sample(body, 'mqfn_broker_auth_failures_total') === 2 ? body : undefined
  }, 15_000, 200)
  assert.equal(sample(text, 'mqfn_broker_events_captured_total', { type: 'connectionError' }), 2)
  assert.equal(sample(text, 'mqfn_broker_connects_total'), 0)
})

test('the dashboard takes ?token= once, then a HttpOnly SameSite=Strict cookie that opens only the dashboard', async (t) => {
  const stack = await startStack(t, { functions: {}, worker: { adminToken: TOKEN } })
  const port = stack.worker.adminPort as number
  const first = await get(port, `/dashboard?type=published&token=${TOKEN}`)
  assert.equal(first.status, 303)
  assert.equal(first.headers.get('location'), '/dashboard?type=published', 'the token leaves the address bar')
  const cookie = first.headers.get('set-cookie') ?? ''
  assert.match(cookie, /^mqfn_admin=[\w-]+; Path=\/dashboard; HttpOnly; SameSite=Strict$/)
  assert.ok(!cookie.includes(TOKEN), 'the cookie is derived from the token, not the token')
  const session = cookie.split(';')[0] as string

  const page = await get(port, '/dashboard?type=published', { cookie: session })
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/)
  const body = await page.text()
  assert.match(body, /<h2 id="dead-letters">Dead letters \(0\)<\/h2>/)
  assert.match(body, /<a href="\/dashboard\/queues">Queues \(bull-board\)<\/a>/)
  assert.equal((await get(port, '/dashboard/queues/api/queues', { cookie: session })).status, 200, 'bull-board\'s API takes the cookie')
  assert.equal((await get(port, '/metrics', { cookie: session })).status, 401, 'the cookie does not open /metrics')
  assert.equal((await get(port, '/dashboard', { cookie: 'mqfn_admin=forged' })).status, 401)
  const escaped = await (await get(port, `/dashboard?client=${encodeURIComponent('<script>x</script>')}`, bearer(TOKEN))).text()
  assert.ok(escaped.includes('value="&lt;script&gt;x&lt;/script&gt;"') && !escaped.includes('<script>x'), 'query values are escaped')

  // the Retry form: same origin only, one small urlencoded id
  const retry = (body: string, headers: Record<string, string> = {}) => fetch(`http://127.0.0.1:${port}/dashboard/dead-letters/retry`, {
    method: 'POST', redirect: 'manual', body, headers: { cookie: session, 'content-type': 'application/x-www-form-urlencoded', ...headers },
  })
  const foreign = await retry('id=x', { origin: 'http://evil.example' })
  assert.deepEqual([foreign.status, await foreign.text()], [403, 'forbidden: the request came from another origin\n'])
  const unknown = await retry('id=no-such-letter')
  assert.equal(unknown.status, 303)
  assert.match(decodeURIComponent(unknown.headers.get('location') ?? ''), /^\/dashboard\?error=No dead letter with id "no-such-letter"/)
  assert.equal((await retry(`id=${'x'.repeat(5000)}`)).status, 413, 'a form over 4 KiB is refused before it is read whole')
  assert.equal((await retry('id=x')).status, 303)
  assert.equal((await get(port, '/HEALTHZ')).status, 401, 'paths match exactly: /HEALTHZ is not /healthz')
  assert.equal((await get(port, '/healthz/')).status, 401)
})

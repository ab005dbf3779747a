import assert from 'node:assert/strict'
import { relative } from 'node:path'
import { after, test } from 'node:test'
import { EVENT_TYPES } from '../common/event-types.ts'
import { createLogger } from '../common/logger.ts'
import { createWorker } from '../runtime/worker.ts'
import { connect, functionsDir, loadIsolated, recorder, startStack, waitFor } from './helpers/stack.ts'

const broken: Record<string, string> = {
  'published/good.ts': recorder('published'),
  'published/syntax.ts': "import { defineHandler } from 'mqtt-functions'\nexport default defineHandler('published', async () => { const x = ; })\n",
  'published/no-default.ts': 'export const config = {}\n',
  'published/throws.ts': "throw new Error('boom while loading')\n",
  'bogus.ts': recorder('published'),
  'clientConnected.ts': recorder('published'),
  'subscribed.ts': recorder('subscribed', "{ topic: 'a/#/b' }"),
  'clientError.ts': recorder('clientError', "{ topic: 'x' }"),
  'delivered.ts': recorder('delivered', '{ retries: 3 }'),
  'unsubscribed.ts': recorder('unsubscribed'),
  'unsubscribed.js': "export default async () => {}\n",
  'published/_helper.ts': 'export const helper = 1\n',
  'published/README.md': '# not a handler\n',
}

test('every bad handler file is reported by path and reason; the good ones load', async () => {
  const dir = await functionsDir(broken)
  const result = await loadIsolated(dir)
  after(result.dispose)
  assert.deepEqual(result.handlers.map((h) => h.name), ['published/good'])
  const rel = (p: string) => relative(process.cwd(), `${dir}/${p}`)
  const errors = Object.fromEntries(result.errors.map((e) => [e.path, `${e.error.code}: ${e.error.message}`]))
  assert.deepEqual(Object.keys(errors).sort(), [
    'bogus.ts', 'clientConnected.ts', 'clientError.ts', 'delivered.ts', 'published/no-default.ts', 'published/syntax.ts',
    'published/throws.ts', 'subscribed.ts', 'unsubscribed.js',
  ].map(rel).sort())
  assert.equal(errors[rel('bogus.ts')], `MQFN_ERR_HANDLER_UNKNOWN_EVENT: ${rel('bogus.ts')}: "bogus" is not an event name. Valid names: ${EVENT_TYPES.join(', ')}`)
  assert.match(errors[rel('published/syntax.ts')] ?? '', new RegExp(`^MQFN_ERR_HANDLER_COMPILE: ${rel('published/syntax.ts')}: does not compile: .*syntax\\.ts:2:\\d+: Unexpected ";"`))
  assert.equal(errors[rel('published/no-default.ts')], `MQFN_ERR_HANDLER_EXPORT: ${rel('published/no-default.ts')}: has no default export; export default defineHandler('published', async (event, ctx) => { ... })`)
  assert.equal(errors[rel('published/throws.ts')], `MQFN_ERR_HANDLER_LOAD: ${rel('published/throws.ts')}: failed while loading: boom while loading`)
  assert.equal(errors[rel('clientConnected.ts')], `MQFN_ERR_HANDLER_EXPORT: ${rel('clientConnected.ts')}: handler is defined for "published" but its file is a "clientConnected" handler`)
  assert.equal(errors[rel('subscribed.ts')], `MQFN_ERR_HANDLER_CONFIG: ${rel('subscribed.ts')}: invalid config export: topic: "#" must be a whole level and the last one [MQTT-4.7.1-2] in "a/#/b"`)
  assert.equal(errors[rel('clientError.ts')], `MQFN_ERR_HANDLER_CONFIG: ${rel('clientError.ts')}: invalid config export: topic: only published, delivered, subscribed, unsubscribed handlers take a topic filter`)
  assert.match(errors[rel('delivered.ts')] ?? '', /^MQFN_ERR_HANDLER_CONFIG: .*delivered\.ts: invalid config export: config: Unrecognized key: "retries"/)
  assert.equal(errors[rel('unsubscribed.js')], `MQFN_ERR_HANDLER_DUPLICATE: Handler "unsubscribed" is defined more than once: ${rel('unsubscribed.js')} and ${rel('unsubscribed.ts')}. Keep one file per handler name`)
})

test('a broken handler file holds its event type back: /readyz names it, a gauge counts it, and its events wait until it loads', async (t) => {
  const token = 'files-token-0123456789'
  const stack = await startStack(t, { functions: broken, worker: { adminToken: token } })
  assert.equal(stack.worker.handlers.length, 1)
  assert.equal(stack.worker.errors.length, 9)
  assert.deepEqual([...stack.worker.held].sort(), ['clientConnected', 'clientError', 'delivered', 'published', 'subscribed', 'unsubscribed'])
  const base = `http://127.0.0.1:${stack.worker.adminPort}`
  const probe = await fetch(`${base}/readyz`)
  assert.equal(probe.status, 503)
  assert.deepEqual(await probe.json(), { status: 'not ready' }, 'a probe without the token learns the status alone')
  const detailed = await fetch(`${base}/readyz`, { headers: { authorization: `Bearer ${token}` } })
  const body = (await detailed.json()) as { status: string; reasons: string[] }
  assert.equal(body.reasons.length, 9)
  assert.ok(body.reasons.some((r) => /^MQFN_ERR_HANDLER_LOAD: .*published\/throws\.ts: failed while loading: boom while loading$/.test(r)), body.reasons.join('\n'))
  assert.ok(body.reasons.some((r) => /^MQFN_ERR_HANDLER_UNKNOWN_EVENT: .*bogus\.ts: "bogus" is not an event name/.test(r)))
  const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
  assert.match(metrics, /mqfn_worker_handler_files_failed\{path=".*published\/throws\.ts",code="MQFN_ERR_HANDLER_LOAD"\} 1/)
  assert.match(metrics, /mqfn_worker_events_held\{event="published"\} 1/)

  const client = await connect(stack.mqttPort, { clientId: 'files' })
  await client.publishAsync('still/waits', 'yes', { qos: 1 })
  await new Promise((r) => setTimeout(r, 1500))
  assert.equal(await stack.db.collection('calls').countDocuments(), 0, 'nothing ran the held event')

  // the fix: the broken published files gone, a worker loads the rest and takes the waiting event
  const fixed = await functionsDir({ 'published/good.ts': broken['published/good.ts'] as string })
  const worker = await createWorker({ ...stack.workerConfig, functionsDir: fixed, adminPort: 0 }, createLogger('test', 'silent'))
  t.after(() => worker.close())
  assert.deepEqual(worker.held, [])
  const call = await waitFor('the good handler on the event that waited', () => stack.db.collection('calls').findOne({ handler: 'published/good' }))
  assert.equal((call.event as { topic: string }).topic, 'still/waits')
})

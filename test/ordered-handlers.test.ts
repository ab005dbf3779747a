import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startLoad } from './helpers/load.ts'
import { mqfn, processStack, ready } from './helpers/processes.ts'
import { waitFor } from './helpers/stack.ts'

const CLIENTS = 20
const PER_CLIENT = 50
/** n in 0..49 with n % 7 === 3: 3, 10, 17, 24, 31, 38, 45 */
const FAILING = Array.from({ length: PER_CLIENT }, (_, n) => n).filter((n) => n % 7 === 3)

// Records every attempt (inserts only: FerretDB) with when it started and ended; the
// first attempt of every n % 7 === 3 fails after recording itself.
const ORDERED = `import { defineHandler } from 'mqtt-functions'
export const config = { ordered: true, attempts: 5, backoff: 50 }
export default defineHandler('published', async (event, ctx) => {
  const text = event.payload.toString()
  const cut = text.lastIndexOf(':')
  const start = Date.now()
  await new Promise((r) => setTimeout(r, 2 + Math.floor(Math.random() * 8)))
  const n = Number(text.slice(cut + 1))
  const fail = n % 7 === 3 && ctx.attempt === 1
  await ctx.db.collection('attempts').insertOne({
    clientId: text.slice(0, cut), n, attempt: ctx.attempt, ok: !fail, pid: process.pid, eventId: event.id, start, end: Date.now(),
  })
  if (fail) throw new Error('the first attempt of n % 7 === 3 fails')
})
`

interface Attempt { clientId: string; n: number; attempt: number; ok: boolean; pid: number; eventId: string; start: number; end: number }

test('an ordered handler gets each client\'s events one at a time, in order, across a retry; clients run in parallel on both workers', async (t) => {
  const stack = await processStack(t, { 'published.ts': ORDERED })
  const broker = mqfn(t, 'broker', stack.brokerEnv())
  await ready(broker, 'broker ready')
  // a gap timeout far beyond the test's waits: every parked event must be woken by its predecessor
  const env = stack.workerEnv({ MQFN_ORDERED_GAP_TIMEOUT_MS: '600000' })
  const workers = [mqfn(t, 'worker', env), mqfn(t, 'worker', env)]
  await Promise.all(workers.map((w) => ready(w, 'worker ready')))

  const load = startLoad({ port: stack.mqttPort, clients: CLIENTS, perClient: PER_CLIENT, window: 10 })
  await load.done
  const loaded = Date.now()
  assert.equal(load.acked.size, CLIENTS * PER_CLIENT, 'every message acknowledged')
  const attempts = stack.db.collection<Attempt>('attempts')
  await waitFor('every message handled successfully', async () => (await attempts.countDocuments({ ok: true })) >= CLIENTS * PER_CLIENT, 180_000, 500)
  await waitFor('the failed first attempts recorded', async () => (await attempts.countDocuments({ ok: false })) >= CLIENTS * FAILING.length, 30_000, 500)

  t.diagnostic(`all handled ${Date.now() - loaded} ms after the last acknowledgement`)
  const all = await attempts.find({}).toArray()
  assert.equal(all.length, CLIENTS * (PER_CLIENT + FAILING.length), 'one attempt per message, two for each n % 7 === 3')
  assert.equal(await stack.db.collection('deadletters').countDocuments(), 0, 'no dead letters')
  const expectedOrder = Array.from({ length: PER_CLIENT }, (_, n) => (FAILING.includes(n) ? [n, n] : [n])).flat()
  const byClient = new Map<string, Attempt[]>()
  for (const a of all) byClient.set(a.clientId, [...(byClient.get(a.clientId) ?? []), a])
  assert.equal(byClient.size, CLIENTS)
  for (const [clientId, mine] of byClient) {
    mine.sort((a, b) => a.start - b.start || a.end - b.end)
    // in handling order: 0, 1, 2, 3 (fails), 3 (succeeds), 4, ... — a failed event holds the later ones back
    assert.deepEqual(mine.map((a) => a.n), expectedOrder, `${clientId}: handling order`)
    assert.deepEqual(mine.filter((a) => a.ok).map((a) => a.n), Array.from({ length: PER_CLIENT }, (_, n) => n), `${clientId}: each message once, successfully`)
    assert.deepEqual(mine.filter((a) => !a.ok).map((a) => [a.n, a.attempt]), FAILING.map((n) => [n, 1]), `${clientId}: failures`)
    for (let i = 1; i < mine.length; i++) {
      const [before, after] = [mine[i - 1] as Attempt, mine[i] as Attempt]
      assert.ok(before.end <= after.start, `${clientId}: n=${before.n} (ended ${before.end}) overlaps n=${after.n} (started ${after.start})`)
    }
  }

  const overlapping = all.some((a) => all.some((b) => b.clientId !== a.clientId && a.start < b.end && b.start < a.end))
  assert.ok(overlapping, 'different clients ran at the same time')
  const pids = new Set(all.map((a) => a.pid))
  assert.deepEqual([...pids].sort(), workers.map((w) => w.pid as number).sort(), 'both workers handled some')
  for (const w of workers) assert.doesNotMatch(w.output(), /never arrived within the gap timeout/, 'no event ran ahead of a gap')

  for (const p of [...workers, broker]) p.kill('SIGTERM')
  assert.deepEqual(await Promise.all([...workers, broker].map((p) => p.exited())), [0, 0, 0])
})

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createConnection } from 'node:net'
import { test } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { chromium, type Page } from 'playwright-core'
import { EVENT_TYPES } from '../common/event-types.ts'
import { ROOT, connect, startStack, waitFor } from './helpers/stack.ts'

const TOKEN = randomBytes(24).toString('hex')
const ARTIFACTS = join(ROOT, '.mqfn', 'test-artifacts')

// fails until the test inserts { _id: 'fixed' } into `flags`; one attempt, so it dead-letters at once
const FLAKY = `import { defineHandler } from 'mqtt-functions'
export const config = { attempts: 1, topic: 'sensors/#' }
export default defineHandler('published', async (event, ctx) => {
  if (!(await ctx.db.collection('flags').findOne({ _id: 'fixed' }))) throw new Error('the thermostat is not fixed yet')
  await ctx.db.collection('results').insertOne({ _id: event.id, topic: event.topic, payload: event.payload.toString() })
})
`

function chromiumPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' })
  const path = found.stdout.trim()
  assert.ok(found.status === 0 && path, 'chromium is not installed: run scripts/install-services.sh (as root; it apt-get installs Debian\'s chromium)')
  return path
}

async function rowCount(page: Page, selector: string): Promise<number> {
  return page.locator(selector).count()
}

test('the dashboard shows waiting jobs in bull-board and a dead letter that Retry resolves once the handler is fixed', async (t) => {
  const executablePath = chromiumPath()
  // nobody consumes `subscribed` here, so the subscription below leaves a job waiting in its queue
  const stack = await startStack(t, {
    functions: { 'published.ts': FLAKY },
    worker: { adminToken: TOKEN, events: EVENT_TYPES.filter((e) => e !== 'subscribed') },
  })
  const port = stack.worker.adminPort as number
  const client = await connect(stack.mqttPort, { clientId: 'thermostat-1' })
  await client.subscribeAsync('commands/thermostat-1', { qos: 1 })
  await client.publishAsync('sensors/thermostat-1/temp', '21.5', { qos: 1 })
  // a burst on one topic: several events share a millisecond, and must still list newest first
  await Promise.all(Array.from({ length: 6 }, (_, i) => client.publishAsync('burst/thermostat-1', String(i), { qos: 0 })))
  // a refused connection: CONNECT with an empty client id and clean=false [MQTT-3.1.3-8]
  const refused = createConnection({ port: stack.mqttPort, host: '127.0.0.1' })
  t.after(() => refused.destroy())
  // mqtt-packet will not generate it: clear the clean-session bit of its connect flags (byte 9) by hand
  const connectBytes = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: '', clean: true, keepalive: 30 })
  connectBytes[9] = (connectBytes[9] as number) & ~0x02
  refused.write(connectBytes)
  const refusal = await waitFor('the connectionError event', () => stack.db.collection<{ error: { message: string } }>('events').findOne({ type: 'connectionError' }), 30_000, 250)
  const dead = stack.db.collection<{ _id: string; eventId: string }>('deadletters')
  const letter = await waitFor('the dead letter', () => dead.findOne({ handler: 'published' }), 30_000, 250)

  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  t.after(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const base = `http://127.0.0.1:${port}`

  await page.goto(`${base}/dashboard?token=${TOKEN}`)
  assert.equal(page.url(), `${base}/dashboard`, 'the token left the address bar')
  const cookies = await page.context().cookies(`${base}/dashboard`)
  assert.deepEqual(cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path })), [{ name: 'mqfn_admin', httpOnly: true, sameSite: 'Strict', path: '/dashboard' }])

  // our page: the dead letter with its error, the client online, its events
  const row = page.locator(`tr[data-dead-letter="${letter._id}"]`)
  await row.waitFor()
  assert.match(await row.innerText(), /Error: the thermostat is not fixed yet/)
  assert.match(await page.locator('#presence + table').innerText(), /thermostat-1/)
  await page.fill('input[name="topic"]', 'sensors/thermostat-1/temp')
  await page.click('button:text("Filter")')
  await page.waitForURL(/topic=sensors%2Fthermostat-1%2Ftemp/)
  const events = await page.locator('#events ~ table tbody tr').allInnerTexts()
  assert.equal(events.length, 1, 'one event on that topic')
  assert.match(events[0] as string, /published\tthermostat-1\tsensors\/thermostat-1\/temp\t\t\t21\.5\t/)

  // newest first in capture order: the event ids (sortable by capture) descend, same millisecond or not
  await page.goto(`${base}/dashboard?topic=${encodeURIComponent('burst/thermostat-1')}`)
  const burst = (await page.locator('#events ~ table tbody tr').allInnerTexts()).map((r) => r.split('\t'))
  assert.deepEqual(burst.map((cells) => cells[6]), ['5', '4', '3', '2', '1', '0'], 'payloads newest first')
  const ids = burst.map((cells) => cells[7] as string)
  assert.deepEqual(ids, [...ids].sort().reverse(), 'ids descend')
  // the refused connection's error message is on the page
  await page.goto(`${base}/dashboard?type=connectionError`)
  const refusedRow = await page.locator('#events ~ table tbody tr').first().innerText()
  assert.ok(refusal.error.message.length > 0)
  assert.ok(refusedRow.includes(refusal.error.message), `${refusedRow} shows "${refusal.error.message}"`)
  await mkdir(ARTIFACTS, { recursive: true })
  const shot = join(ARTIFACTS, 'dashboard.png')
  await page.goto(`${base}/dashboard`)
  await page.screenshot({ path: shot, fullPage: true })
  t.diagnostic(`screenshot: ${shot}`)

  // bull-board, one click away: the subscribed queue holds the waiting job
  await page.click('a:text("Queues (bull-board)")')
  await page.waitForURL(`${base}/dashboard/queues`)
  await page.getByText('subscribed', { exact: true }).first().waitFor({ timeout: 30_000 })
  const api = await page.evaluate(async () => (await fetch('/dashboard/queues/api/queues?activeQueue=subscribed&status=waiting')).json()) as { queues: { name: string; counts: Record<string, number> }[] }
  const names = api.queues.map((q) => q.name).sort()
  assert.deepEqual(names, [...EVENT_TYPES, 'outbox'].sort(), 'every event queue and the outbox')
  assert.equal(api.queues.find((q) => q.name === 'subscribed')?.counts.waiting, 1)
  // the overview's queue cards, as a user sees them first
  await page.goto(`${base}/dashboard/queues`)
  await page.getByText('subscribed', { exact: true }).first().waitFor({ timeout: 30_000 })
  // the queue names come from the menu before the cards have loaded their counts ("Loading...")
  await page.getByText(/\b1 Job\b/).first().waitFor({ timeout: 30_000 })
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-queues-overview.png'), fullPage: true })
  // the cards count the jobs in Redis: batch jobs are removed once complete (removeOnComplete),
  // so "0 Jobs" on a consumed queue is true; the unconsumed queue's waiting job is counted
  const overview = (await page.locator('body').innerText()).replace(/\s+/g, ' ')
  t.diagnostic(`overview: ${overview.slice(0, 600)}`)
  assert.match(overview, /subscribed No workers 1 Job\b/)
  assert.match(overview, /published 0 Jobs/)
  await page.goto(`${base}/dashboard/queues/queue/subscribed?status=waiting`)
  // the waiting job's card, by its job name
  await page.getByText('batch', { exact: true }).waitFor({ timeout: 30_000 })
  const queueShot = join(ARTIFACTS, 'dashboard-queues.png')
  await page.screenshot({ path: queueShot, fullPage: true })
  t.diagnostic(`screenshot: ${queueShot}`)

  // fix the handler, then Retry from our page
  await stack.db.collection<{ _id: string }>('flags').insertOne({ _id: 'fixed' })
  await page.goto(`${base}/dashboard`)
  await page.locator(`tr[data-dead-letter="${letter._id}"] button:text("Retry")`).click()
  await page.waitForURL(/retried=/)
  assert.match(await page.locator('p.notice').innerText(), new RegExp(`Retry enqueued for ${letter._id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
  await waitFor('the dead letter resolved on the page', async () => {
    await page.reload()
    return (await rowCount(page, `tr[data-dead-letter="${letter._id}"]`)) === 0
  }, 30_000, 500)
  assert.match(await page.locator('#dead-letters').innerText(), /Dead letters \(0\)/)
  assert.equal(await dead.countDocuments(), 0)
  assert.deepEqual(await stack.db.collection('results').find().toArray(), [{ _id: letter.eventId, topic: 'sensors/thermostat-1/temp', payload: '21.5' }])
})

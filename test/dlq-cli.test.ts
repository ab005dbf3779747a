import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { freePort } from '../scripts/services.ts'
import { DeadLetters, type DeadLetterDocument } from '../runtime/redelivery/index.ts'
import { ROOT, connect, recorder, services, sleep, startStack, waitFor, type Stack } from './helpers/stack.ts'

const BIN = join(ROOT, 'dist', 'mqfn.js')

interface Run { code: number | null; stdout: string; stderr: string }

/** `mqfn dlq <args>` as a user runs it: the built bin, configured by environment. */
function dlq(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'dlq', ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

function envOf(stack: Stack): NodeJS.ProcessEnv {
  return { REDIS_URL: stack.services.redisUrl, MONGO_URL: stack.services.mongoUrl, MQFN_DATABASE: stack.db.databaseName, MQFN_PREFIX: stack.prefix }
}

/** Fails while `flags` holds {_id: 'broken'}; counts every run in `runs`; the recorder then stores successes in `calls`. */
const BREAKABLE = `
  await ctx.db.collection('runs').updateOne({ _id: event.id + '/' + ctx.handler },
    { $inc: { runs: 1 }, $push: { attempts: ctx.attempt } }, { upsert: true })
  if (await ctx.db.collection('flags').findOne({ _id: 'broken' })) throw new Error(ctx.handler + ' is broken (attempt ' + ctx.attempt + ')')
`

interface RunDoc { _id: string; runs: number; attempts: number[] }
interface CallDoc { _id: string; handler: string; attempt: number }

const HEADER = ['ID', 'TYPE', 'HANDLER', 'DEAD AT', 'ATTEMPTS', 'LAST ERROR']

/** The rows of `dlq list`, each checked to start under its column's title. */
function rows(stdout: string): string[][] {
  const lines = stdout.trimEnd().split('\n')
  const header = lines[0] ?? ''
  assert.deepEqual(header.split(/ {2,}/), HEADER)
  const starts = HEADER.map((title) => header.indexOf(title))
  return lines.slice(1).map((line) => {
    const cells = line.split(/ {2,}/)
    cells.forEach((cell, i) => assert.equal(line.indexOf(cell, starts[i]), starts[i], `column ${HEADER[i]} of ${JSON.stringify(line)}`))
    return cells
  })
}

function row(doc: DeadLetterDocument): string[] {
  const last = doc.errors[doc.errors.length - 1]
  return [doc._id, doc.type, doc.handler ?? '-', doc.deadAt.toISOString(), String(doc.errors.length), `${last?.name}: ${last?.message}`]
}

test('mqfn dlq lists, shows, retries and purges the dead letters of a broken handler', async (t) => {
  const stack = await startStack(t, {
    functions: {
      'published/alpha.ts': recorder('published', "{ topic: 'alpha/#', attempts: 2, backoff: 50 }", BREAKABLE),
      'published/beta.ts': recorder('published', "{ topic: 'beta/#', attempts: 2, backoff: 50 }", BREAKABLE),
      'subscribed.ts': recorder('subscribed', '{ attempts: 2, backoff: 50 }', BREAKABLE),
    },
  })
  const env = envOf(stack)
  const letters = stack.db.collection<DeadLetterDocument>('deadletters')
  const runs = stack.db.collection<RunDoc>('runs')
  const calls = stack.db.collection<CallDoc>('calls')
  const flags = stack.db.collection<{ _id: string }>('flags')
  const newestFirst = async (filter: Partial<Pick<DeadLetterDocument, 'handler' | 'type'>> = {}) =>
    (await letters.find(filter).toArray()).sort((a, b) => b.deadAt.getTime() - a.deadAt.getTime() || (a._id < b._id ? 1 : -1))
  const idOf = async (handler: string, topic: string) => {
    const doc = (await letters.find({ handler }).toArray()).find((d) => (d.event as { topic?: string }).topic === topic)
    assert.ok(doc, `the dead letter of ${handler} on ${topic}`)
    return doc._id
  }

  await flags.insertOne({ _id: 'broken' })
  const client = await connect(stack.mqttPort, { clientId: 'dlq-device' })
  await client.subscribeAsync('x/#', { qos: 1 })
  await client.publishAsync('alpha/1', 'temp 21.5', { qos: 1 })
  await client.publishAsync('alpha/2', Buffer.from([0xff, 0x00, 0xfe]), { qos: 1 })
  await client.publishAsync('alpha/3', 'three', { qos: 1 })
  await waitFor('4 dead letters', async () => (await letters.countDocuments()) === 4)
  await sleep(20)
  const cutoff = new Date()
  await sleep(20)
  await client.publishAsync('beta/1', 'b1', { qos: 1 })
  await client.publishAsync('beta/2', 'b2', { qos: 1 })
  await waitFor('6 dead letters', async () => (await letters.countDocuments()) === 6)
  await sleep(300)
  assert.equal(await letters.countDocuments(), 6, 'exactly one dead letter per event and handler')
  assert.deepEqual((await runs.find().toArray()).map((r) => r.attempts), Array(6).fill([1, 2]))
  assert.equal(await calls.countDocuments(), 0)

  await t.test('list: newest first, one aligned line each, filtered by type, handler and time', async () => {
    const all = await dlq(env, 'list')
    assert.equal(all.code, 0, all.stderr)
    assert.equal(all.stderr, '')
    const listed = rows(all.stdout)
    assert.deepEqual(listed, (await newestFirst()).map(row))
    assert.deepEqual(listed.slice(0, 2).map((r) => r[2]), ['published/beta', 'published/beta'])
    assert.deepEqual([...listed.slice(2).map((r) => r[2])].sort(), ['published/alpha', 'published/alpha', 'published/alpha', 'subscribed'])
    assert.deepEqual(listed.map((r) => r[3]), listed.map((r) => r[3]).sort().reverse(), 'newest first')
    assert.deepEqual(listed.map((r) => r[4]), Array(6).fill('2'))
    for (const r of listed) assert.equal(r[5], `Error: ${r[2]} is broken (attempt 2)`)

    const byType = rows((await dlq(env, 'list', '--type', 'subscribed')).stdout)
    assert.deepEqual(byType, (await newestFirst({ type: 'subscribed' })).map(row))
    assert.equal(byType.length, 1)
    assert.equal(rows((await dlq(env, 'list', '--type', 'published')).stdout).length, 5)
    const alpha = rows((await dlq(env, 'list', '--handler', 'published/alpha')).stdout)
    assert.deepEqual(alpha, (await newestFirst({ handler: 'published/alpha' })).map(row))
    assert.equal(alpha.length, 3)
    assert.equal(rows((await dlq(env, 'list', '--type', 'published', '--handler', 'published/beta')).stdout).length, 2)
    assert.equal((await dlq(env, 'list', '--type', 'subscribed', '--handler', 'published/beta')).stdout, 'no dead letters\n')

    const since = rows((await dlq(env, 'list', '--since', cutoff.toISOString())).stdout)
    assert.deepEqual(since.map((r) => r[2]), ['published/beta', 'published/beta'])
    const until = rows((await dlq(env, 'list', `--until=${cutoff.toISOString()}`)).stdout)
    assert.deepEqual(until.map((r) => r[2]).sort(), ['published/alpha', 'published/alpha', 'published/alpha', 'subscribed'])
    assert.equal(rows((await dlq(env, 'list', '--since', '1h')).stdout).length, 6)
    assert.equal((await dlq(env, 'list', '--until', '1h')).stdout, 'no dead letters\n')

    const limited = (await dlq(env, 'list', '--limit', '2')).stdout.trimEnd().split('\n')
    assert.equal(limited.at(-1), '(2 of 6 shown; --limit to see more)')
    assert.deepEqual(rows(limited.slice(0, -1).join('\n')), listed.slice(0, 2))

    const json = await dlq(env, 'list', '--json')
    assert.equal(json.code, 0, json.stderr)
    assert.deepEqual(JSON.parse(json.stdout), (await newestFirst()).map((d) => ({
      id: d._id,
      eventId: d.eventId,
      type: d.type,
      handler: d.handler,
      deadAt: d.deadAt.toISOString(),
      attempts: 2,
      lastError: { name: 'Error', message: `${d.handler} is broken (attempt 2)` },
    })))
    assert.deepEqual(JSON.parse((await dlq(env, 'list', '--json', '--handler', 'published/alpha', '--since', cutoff.toISOString())).stdout), [])
  })

  await t.test('show: the event, the payload decoded, every attempt with its stack', async () => {
    const id = await idOf('published/alpha', 'alpha/1')
    const doc = await letters.findOne({ _id: id })
    assert.ok(doc)
    const shown = await dlq(env, 'show', id)
    assert.equal(shown.code, 0, shown.stderr)
    const eventId = id.split('/')[0] as string
    assert.equal(doc.eventId, eventId)
    assert.ok(shown.stdout.startsWith([
      `id        ${id}`,
      `event id  ${eventId}`,
      'type      published',
      'handler   published/alpha',
      `dead at   ${doc.deadAt.toISOString()}`,
      'attempts  2',
      '',
      'event',
      `  id: "${eventId}"`,
    ].join('\n') + '\n'), shown.stdout)
    assert.match(shown.stdout, /\n {2}topic: "alpha\/1"\n/)
    assert.match(shown.stdout, /\n {2}clientId: "dlq-device"\n/)
    assert.doesNotMatch(shown.stdout, /\n {2}payload: /, 'the payload is shown decoded, not as base64')
    assert.ok(shown.stdout.includes('\npayload (9 bytes, utf8)\n  temp 21.5\n'), shown.stdout)
    const [first, second] = doc.errors
    assert.ok(first && second)
    const errors = shown.stdout.slice(shown.stdout.indexOf('\nerrors\n'))
    assert.match(errors, new RegExp(`^\\nerrors\\n {2}attempt 1 at ${new Date(first.at).toISOString()}\\n {4}Error: published/alpha is broken \\(attempt 1\\)\\n {8}at `))
    assert.match(errors, new RegExp(`\\n {2}attempt 2 at ${new Date(second.at).toISOString()}\\n {4}Error: published/alpha is broken \\(attempt 2\\)\\n {8}at `))
    assert.equal(errors.match(/\n {2}attempt \d/g)?.length, 2)

    const binary = await dlq(env, 'show', await idOf('published/alpha', 'alpha/2'))
    assert.ok(binary.stdout.includes('\npayload (3 bytes, hex)\n  ff00fe\n'), binary.stdout)

    const json = await dlq(env, 'show', '--json', await idOf('published/alpha', 'alpha/2'))
    assert.equal(json.code, 0, json.stderr)
    const parsed = JSON.parse(json.stdout) as { _id: string; handler: string; event: { topic: string; payload: string }; errors: { attempt: number; message: string; stack: string }[]; payload: unknown; deadAt: string }
    assert.equal(parsed._id, await idOf('published/alpha', 'alpha/2'))
    assert.equal(parsed.handler, 'published/alpha')
    assert.equal(parsed.event.topic, 'alpha/2')
    assert.equal(parsed.event.payload, '/wD+')
    assert.deepEqual(parsed.payload, { bytes: 3, encoding: 'hex', text: 'ff00fe' })
    assert.deepEqual(parsed.errors.map((e) => [e.attempt, e.message]), [[1, 'published/alpha is broken (attempt 1)'], [2, 'published/alpha is broken (attempt 2)']])
    for (const e of parsed.errors) assert.match(e.stack, /^Error: published\/alpha is broken \(attempt \d\)\n\s+at /)

    const missing = await dlq(env, 'show', 'nope')
    assert.deepEqual(missing, { code: 1, stdout: '', stderr: 'mqfn dlq: MQFN_ERR_DLQ_NOT_FOUND: No dead letter with id "nope" (mqfn dlq list shows the ids)\n' })
  })

  await t.test('retry while the handler is still broken: the dead letter comes back with a third error', async () => {
    const id = await idOf('published/beta', 'beta/1')
    const before = await letters.findOne({ _id: id })
    const retried = await dlq(env, 'retry', id)
    assert.deepEqual(retried, { code: 0, stdout: 're-enqueued 1 dead letter\n', stderr: '' })
    const after = await waitFor('the third error', async () => {
      const doc = await letters.findOne({ _id: id })
      return doc && doc.errors.length === 3 ? doc : undefined
    })
    assert.deepEqual(after.errors.map((e) => [e.attempt, e.message]), [1, 2, 3].map((n) => [n, `published/beta is broken (attempt ${n})`]))
    assert.deepEqual(after.errors.slice(0, 2), before?.errors)
    assert.ok(after.deadAt > (before?.deadAt ?? new Date()))
    assert.deepEqual((await runs.findOne({ _id: id }))?.attempts, [1, 2, 3])
    assert.equal(await letters.countDocuments(), 6)
    assert.equal(await calls.countDocuments(), 0)
  })

  await t.test('retry skips events that failed validation; a dry run and an unknown id change nothing', async () => {
    await new DeadLetters(stack.db).invalidEvent({ id: 'bad-1', type: 'published', topic: '' }, 'topic: Too small')
    const dry = await dlq(env, 'retry', '--type', 'published', '--dry-run')
    assert.deepEqual(dry, {
      code: 0,
      stdout: 'skipped bad-1: the event failed validation; a retry cannot fix it (purge it instead)\nwould re-enqueue 5 dead letters; skipped 1\n',
      stderr: '',
    })
    const unknown = await dlq(env, 'retry', await idOf('published/alpha', 'alpha/1'), 'nope', 'nope2')
    assert.deepEqual(unknown, { code: 1, stdout: '', stderr: 'mqfn dlq: MQFN_ERR_DLQ_NOT_FOUND: No dead letter with id "nope", "nope2" (mqfn dlq list shows the ids)\n' })
    await sleep(500)
    const attempts = (await runs.find().toArray()).map((r) => r.attempts.length).sort()
    assert.deepEqual(attempts, [2, 2, 2, 2, 2, 3], 'no handler ran')
    assert.equal(await letters.countDocuments(), 7)
  })

  await t.test('fixed: retry --handler re-enqueues exactly its dead letters; each succeeds once and is deleted', async () => {
    await flags.deleteOne({ _id: 'broken' })
    const alphaIds = (await letters.find({ handler: 'published/alpha' }).toArray()).map((d) => d._id).sort()
    assert.equal(alphaIds.length, 3)
    const retried = await dlq(env, 'retry', '--handler', 'published/alpha')
    assert.deepEqual(retried, { code: 0, stdout: 're-enqueued 3 dead letters\n', stderr: '' })
    await waitFor('the alpha dead letters to go', async () => (await letters.countDocuments({ handler: 'published/alpha' })) === 0)
    await sleep(500)
    assert.deepEqual((await calls.find().toArray()).map((c) => [c._id, c.attempt]).sort(), alphaIds.map((id) => [id, 3]))
    const alphaRuns = await runs.find({ _id: { $in: alphaIds } }).toArray()
    assert.deepEqual(alphaRuns.map((r) => [r.runs, r.attempts]), Array(3).fill([3, [1, 2, 3]]), 'each ran exactly once more')
    const left = (await letters.find().toArray()).map((d) => d._id).sort()
    assert.deepEqual(left, [
      'bad-1',
      await idOf('published/beta', 'beta/1'),
      await idOf('published/beta', 'beta/2'),
      (await letters.findOne({ type: 'subscribed' }))?._id,
    ].sort())
    assert.equal((await dlq(env, 'list', '--handler', 'published/alpha')).stdout, 'no dead letters\n')
  })

  await t.test('purge: exactly the matching dead letters', async () => {
    assert.deepEqual(await dlq(env, 'purge', '--type', 'subscribed', '--dry-run'), { code: 0, stdout: 'would purge 1 dead letter\n', stderr: '' })
    assert.equal(await letters.countDocuments(), 4)
    assert.deepEqual(await dlq(env, 'purge', '--type', 'subscribed'), { code: 0, stdout: 'purged 1 dead letter\n', stderr: '' })
    assert.equal(await letters.countDocuments({ type: 'subscribed' }), 0)
    assert.equal(await letters.countDocuments(), 3)

    assert.deepEqual(await dlq(env, 'purge', '--handler', 'published/beta', '--until', cutoff.toISOString()), { code: 0, stdout: 'purged 0 dead letters\n', stderr: '' })
    const unknown = await dlq(env, 'purge', 'bad-1', 'nope')
    assert.deepEqual(unknown, { code: 1, stdout: '', stderr: 'mqfn dlq: MQFN_ERR_DLQ_NOT_FOUND: No dead letter with id "nope" (mqfn dlq list shows the ids)\n' })
    assert.equal(await letters.countDocuments(), 3)
    assert.deepEqual(await dlq(env, 'purge', 'bad-1'), { code: 0, stdout: 'purged 1 dead letter\n', stderr: '' })
    assert.equal(await letters.countDocuments({ _id: 'bad-1' }), 0)

    assert.deepEqual(await dlq(env, 'purge', '--all', '--dry-run'), { code: 0, stdout: 'would purge 2 dead letters\n', stderr: '' })
    assert.deepEqual(await dlq(env, 'purge', '--handler', 'published/beta', '--since', '1h'), { code: 0, stdout: 'purged 2 dead letters\n', stderr: '' })
    assert.equal(await letters.countDocuments(), 0)
    assert.equal((await dlq(env, 'list')).stdout, 'no dead letters\n')
  })
})

test('mqfn dlq usage errors exit 2 naming the flag and what was expected', async () => {
  const cases: [string[], string | RegExp][] = [
    [[], 'mqfn dlq: missing command: list, show, retry or purge'],
    [['frobnicate'], 'mqfn dlq: unknown command "frobnicate": expected list, show, retry or purge'],
    [['list', '--since', 'yesterday'], 'mqfn dlq list: --since: expected an ISO date (2025-05-01, 2025-05-01T12:00:00Z) or a time ago (30s, 30m, 2h, 7d, 2w), got "yesterday"'],
    [['retry', '--until', '2h30m'], 'mqfn dlq retry: --until: expected an ISO date (2025-05-01, 2025-05-01T12:00:00Z) or a time ago (30s, 30m, 2h, 7d, 2w), got "2h30m"'],
    [['list', '--since', '1h', '--until', '2025-01-01'], /^mqfn dlq list: --since \(\d{4}-\d\d-\d\dT[\d:.]+Z\) is later than --until \(2025-01-01T00:00:00\.000Z\)\n/],
    [['list', '--type', 'bogus'], 'mqfn dlq list: --type: expected an event type (clientConnected, clientDisconnecting, clientDisconnected, clientError, connectionError, keepaliveTimeout, published, delivered, subscribed, unsubscribed, ready, closed), got "bogus"'],
    [['purge', '--handler', 'alerts'], 'mqfn dlq purge: --handler: expected a handler name (<event> or <event>/<name>, e.g. published/alerts), got "alerts"'],
    [['list', '--limit', '0'], 'mqfn dlq list: --limit: expected a positive integer, got "0"'],
    [['retry', '--attempts', 'three'], 'mqfn dlq retry: --attempts: expected a positive integer, got "three"'],
    [['list', '--type'], 'mqfn dlq list: --type needs a value'],
    [['list', '--colour', 'blue'], 'mqfn dlq list: unknown option --colour'],
    [['purge', '--limit', '3', '--all'], 'mqfn dlq purge: unknown option --limit'],
    [['list', 'some-id'], 'mqfn dlq list: unexpected argument "some-id" (list takes filters, not ids; dlq show <id> shows one)'],
    [['show'], 'mqfn dlq show: expected one id, got 0'],
    [['show', 'a', 'b'], 'mqfn dlq show: expected one id, got 2'],
    [['purge'], 'mqfn dlq purge: give ids or a filter (--type, --handler, --since, --until), or --all to delete every dead letter'],
    [['purge', '--dry-run'], 'mqfn dlq purge: give ids or a filter (--type, --handler, --since, --until), or --all to delete every dead letter'],
    [['purge', '--all', '--type', 'published'], 'mqfn dlq purge: --all cannot be combined with ids or filters'],
  ]
  // unreachable servers: a usage error must be reported before anything connects
  const nowhere = { REDIS_URL: 'redis://127.0.0.1:1', MONGO_URL: 'mongodb://127.0.0.1:1/x' }
  for (const [args, message] of cases) {
    const result = await dlq(nowhere, ...args)
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.equal(result.stdout, '')
    if (typeof message === 'string') assert.equal(result.stderr, `${message}\nrun "mqfn dlq --help" for usage\n`)
    else assert.match(result.stderr, message)
  }

  const help = await dlq({}, '--help')
  assert.equal(help.code, 0)
  assert.match(help.stdout, /^usage: mqfn dlq <command> \[options\] \[--config file\.json\]\n/)
  for (const command of ['list', 'show <id>', 'retry [<id>...]', 'purge [<id>...]']) assert.ok(help.stdout.includes(`\n  ${command} `), command)
})

test('mqfn dlq exits 1 with the worker\'s messages when configuration is bad or Redis / MongoDB cannot be reached', async () => {
  const svc = await services()
  const dead = await freePort()
  const config = await dlq({ MONGO_URL: 'postgres://x' }, 'list')
  assert.equal(config.code, 1)
  assert.equal(config.stderr, 'mqfn dlq: MQFN_ERR_CONFIG: Invalid configuration: mongoUrl (env MONGO_URL): expected a mongodb:// or mongodb+srv:// URL (got "postgres://x")\n')

  const mongo = await dlq({ REDIS_URL: svc.redisUrl, MONGO_URL: `mongodb://127.0.0.1:${dead}/x`, MQFN_CONNECT_TIMEOUT_MS: '1000' }, 'list')
  assert.equal(mongo.code, 1)
  assert.match(mongo.stderr, new RegExp(`^mqfn dlq: MQFN_ERR_MONGO_UNREACHABLE: MongoDB is unreachable at mongodb://127.0.0.1:${dead}/x \\(set MONGO_URL\\): `))

  const redis = await dlq({ REDIS_URL: `redis://127.0.0.1:${dead}`, MONGO_URL: svc.mongoUrl, MQFN_CONNECT_TIMEOUT_MS: '1000' }, 'retry', '--type', 'published')
  assert.equal(redis.code, 1)
  assert.match(redis.stderr, new RegExp(`^mqfn dlq: MQFN_ERR_REDIS_UNREACHABLE: Redis is unreachable at redis://127.0.0.1:${dead} \\(set REDIS_URL\\): .*ECONNREFUSED`))
  assert.equal(redis.stdout, '')
})

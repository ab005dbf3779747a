import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createLogger } from '../common/logger.ts'
import { EventLog } from '../runtime/store/event-log.ts'
import { ensureIndexes, secondaryIndexesHelp } from '../runtime/store/indexes.ts'
import { startStack } from './helpers/stack.ts'

/*
 * The event log keeps the indexes its documented queries use (type_ts for `mqfn replay`
 * and the dashboard's type filter, client_ts for its client filter) where the server
 * uses them, none on FerretDB 1.x, and drops topic_ts, which earlier versions created.
 */

const names = async (collection: { indexes(): Promise<{ name?: string }[]> }) => (await collection.indexes()).map((i) => i.name).sort()

test('event log indexes: the documented ones where the server uses them, none on FerretDB 1.x; an obsolete one dropped', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const info = await stack.db.admin().command({ buildInfo: 1 })
  const ferret = typeof info.ferretdbVersion === 'string' && /^v?1\./.test(info.ferretdbVersion)
  assert.equal(await secondaryIndexesHelp(stack.db), !ferret)

  // as an earlier version left it
  const events = stack.db.collection('events')
  for (const [key, name] of [[{ type: 1, ts: -1 }, 'type_ts'], [{ clientId: 1, ts: -1 }, 'client_ts'], [{ topic: 1, ts: -1 }, 'topic_ts']] as const) await events.createIndex(key, { name })
  assert.deepEqual(await names(events), ['_id_', 'client_ts', 'topic_ts', 'type_ts'])

  const log = new EventLog(stack.db, 0, createLogger('test', 'silent'))
  t.after(() => log.close())
  await log.setup()
  assert.deepEqual(await names(events), ferret ? ['_id_'] : ['_id_', 'client_ts', 'type_ts'])
  // a second start (every worker after the first) changes nothing
  await log.setup()
  assert.deepEqual(await names(events), ferret ? ['_id_'] : ['_id_', 'client_ts', 'type_ts'])
})

test('ensureIndexes without a policy creates every index asked for, on any server; a missing collection has nothing to drop', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const fresh = stack.db.collection('never_written')
  await ensureIndexes(fresh, [{ key: { a: 1 }, name: 'a_1' }], { db: stack.db, obsolete: ['gone'] })
  const other = stack.db.collection('kept')
  await ensureIndexes(other, [{ key: { b: 1 }, name: 'b_1' }])
  assert.deepEqual(await names(other), ['_id_', 'b_1'])
})

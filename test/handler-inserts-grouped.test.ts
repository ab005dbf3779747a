import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { MongoClient, MongoServerError, type CommandStartedEvent, type Db, type ObjectId } from 'mongodb'
import { isDuplicateKey } from '../runtime/store/mongo-errors.ts'
import { groupedDb } from '../runtime/sandbox/grouped-db.ts'
import { startStack } from './helpers/stack.ts'

/*
 * ctx.db's insertOne is group-committed (runtime/sandbox/grouped-db.ts): inserts asked
 * for while one is in flight share one unordered insertMany, and each caller gets what
 * its own insertOne would give. Counted from the driver's command monitoring against
 * the test's real MongoDB-wire server.
 */

async function monitored(t: TestContext): Promise<{ db: Db; raw: Db; inserts: () => number[] }> {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const client = new MongoClient(stack.services.mongoUrl, { monitorCommands: true })
  await client.connect()
  t.after(() => client.close())
  const sizes: number[] = []
  client.on('commandStarted', (e: CommandStartedEvent) => {
    if (e.commandName === 'insert') sizes.push((e.command.documents as unknown[] | undefined)?.length ?? 0)
  })
  const raw = client.db(stack.db.databaseName)
  return { db: groupedDb(raw), raw, inserts: () => sizes.splice(0) }
}

test('concurrent insertOne calls share a few insertMany commands; each gets its own result', async (t) => {
  const { db, raw, inserts } = await monitored(t)
  const readings = db.collection<{ _id: string; n: number }>('readings')
  const results = await Promise.all(Array.from({ length: 200 }, (_, n) => readings.insertOne({ _id: `r-${n}`, n })))
  assert.deepEqual(results.map((r) => r.insertedId), Array.from({ length: 200 }, (_, n) => `r-${n}`))
  assert.ok(results.every((r) => r.acknowledged))
  const sizes = inserts()
  assert.equal(sizes.reduce((a, b) => a + b, 0), 200, 'every document sent once')
  assert.ok(sizes.length <= 3, `200 concurrent inserts took ${sizes.length} commands (${sizes.join(', ')})`)
  assert.equal(await raw.collection('readings').countDocuments({}), 200)

  // one alone is a plain insertOne; a document without _id gets the driver's ObjectId, as insertOne gives it
  const lone = await readings.insertOne({ _id: 'alone', n: -1 })
  assert.equal(lone.insertedId, 'alone')
  const noId: { _id?: ObjectId; n: number } = { n: -2 }
  const [a, b] = await Promise.all([db.collection('other').insertOne(noId), db.collection('other').insertOne({ n: -3 })])
  assert.equal(a.insertedId, noId._id)
  assert.notEqual(String(a.insertedId), String(b.insertedId))
  assert.deepEqual(inserts(), [1, 2])
})

test('a duplicate in a group fails that insert alone, with the error insertOne gives; the others are stored', async (t) => {
  const { db, raw, inserts } = await monitored(t)
  const readings = db.collection<{ _id: string; n: number }>('readings')
  await readings.insertOne({ _id: 'taken', n: 0 })
  const alone = await raw.collection<{ _id: string }>('readings').insertOne({ _id: 'taken' }).catch((err: unknown) => err)
  inserts()
  const settled = await Promise.allSettled([
    readings.insertOne({ _id: 'a', n: 1 }),
    readings.insertOne({ _id: 'taken', n: 2 }),
    readings.insertOne({ _id: 'b', n: 3 }),
  ])
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled'])
  const err = (settled[1] as PromiseRejectedResult).reason as MongoServerError
  assert.ok(err instanceof MongoServerError && isDuplicateKey(err))
  assert.equal(err.name, (alone as Error).name)
  assert.equal(err.message, (alone as Error).message)
  // the group, then the refused document alone
  assert.deepEqual(inserts(), [3, 1])
  assert.deepEqual((await raw.collection('readings').find().sort({ _id: 1 }).toArray()).map((d) => [d._id, d.n]), [['a', 1], ['b', 3], ['taken', 0]])
})

test('a document the driver cannot serialise fails alone; inserts with options and collections with options are not grouped', async (t) => {
  const { db, raw, inserts } = await monitored(t)
  const readings = db.collection<{ _id: string; self?: unknown }>('readings')
  const cyclic: { _id: string; self?: unknown } = { _id: 'cyclic' }
  cyclic.self = cyclic
  const settled = await Promise.allSettled([readings.insertOne({ _id: 'x' }), readings.insertOne(cyclic), readings.insertOne({ _id: 'y' })])
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled'])
  assert.match(String((settled[1] as PromiseRejectedResult).reason), /circular/i)
  assert.deepEqual((await raw.collection('readings').find().sort({ _id: 1 }).toArray()).map((d) => d._id), ['x', 'y'])
  inserts()

  // options: the driver's own insertOne, one command each
  await Promise.all([readings.insertOne({ _id: 'o1' }, { comment: 'mine' }), readings.insertOne({ _id: 'o2' }, { comment: 'mine' })])
  const own = db.collection<{ _id: string }>('readings', { writeConcern: { w: 1 } })
  await Promise.all([own.insertOne({ _id: 'o3' }), own.insertOne({ _id: 'o4' })])
  assert.deepEqual(inserts(), [1, 1, 1, 1])
  // everything else is the driver's, through the view
  assert.equal(await readings.countDocuments({}), 6)
  assert.equal(db.databaseName, raw.databaseName)
})

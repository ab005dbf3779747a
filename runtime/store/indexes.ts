import type { Collection, CreateIndexesOptions, Db, Document, IndexSpecification } from 'mongodb'

export interface IndexSpec {
  key: IndexSpecification
  name: string
  options?: CreateIndexesOptions
}

const scansAnyway = new WeakMap<Db, Promise<boolean>>()

/*
 * FerretDB 1.x (SQLite backend) scans the collection for every query whatever indexes
 * exist (even its `_id` pushdown misses its own `_id` index: docs/handlers.md, "What is
 * slow on FerretDB"), while each index costs every insert. Measured on this project's event documents (20,000 inserts,
 * FerretDB 1.24.2): 48–58 µs of FerretDB CPU per document without secondary indexes,
 * 69–110 µs with the event log's former three; a find by type or client with a sort
 * took the same ~2 s with and without its index. So none is created there.
 */
export function secondaryIndexesHelp(db: Db): Promise<boolean> {
  let known = scansAnyway.get(db)
  if (!known) {
    known = db.admin().command({ buildInfo: 1 }).then((info) => !/^v?1\./.test(String((info as { ferretdbVersion?: unknown }).ferretdbVersion ?? 'none')))
    scansAnyway.set(db, known)
  }
  return known
}

/** Where ensureIndexes may skip or drop indexes. */
export interface IndexPolicy {
  /** The collection's database: on a server that does not use secondary indexes, none is created. */
  db: Db
  /** Names an earlier version created that no documented query needs any more: dropped where present. */
  obsolete?: readonly string[]
}

/**
 * Creates the indexes a collection's documented queries need, with `policy` only where
 * the server uses them (see secondaryIndexesHelp), dropping obsolete ones. One by one: a
 * single createIndexes would do on MongoDB, but FerretDB 1.24 drops the connection when
 * one command lists several indexes that already exist.
 */
export async function ensureIndexes<T extends Document>(collection: Collection<T>, specs: readonly IndexSpec[], policy?: IndexPolicy): Promise<void> {
  const help = policy ? await secondaryIndexesHelp(policy.db) : true
  const unwanted = new Set([...(policy?.obsolete ?? []), ...(help ? [] : specs.map((s) => s.name))])
  if (unwanted.size > 0) {
    // a collection not created yet has no indexes (NamespaceNotFound, code 26)
    const existing = await collection.indexes().catch((err: unknown) => {
      if ((err as { code?: unknown }).code === 26) return []
      throw err
    })
    for (const { name } of existing) if (name !== undefined && unwanted.has(name)) await collection.dropIndex(name)
  }
  if (!help) return
  for (const spec of specs) await collection.createIndex(spec.key, { ...spec.options, name: spec.name })
}

import type { Collection, CreateIndexesOptions, Document, IndexSpecification } from 'mongodb'

export interface IndexSpec {
  key: IndexSpecification
  name: string
  options?: CreateIndexesOptions
}

/**
 * Creates indexes one by one. A single createIndexes command would do on MongoDB,
 * but FerretDB 1.24 drops the connection when one command lists several indexes
 * that already exist (every worker start after the first).
 */
export async function ensureIndexes<T extends Document>(collection: Collection<T>, specs: readonly IndexSpec[]): Promise<void> {
  for (const spec of specs) await collection.createIndex(spec.key, { ...spec.options, name: spec.name })
}

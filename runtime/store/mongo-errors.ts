/** MongoDB's duplicate key error: the document is already there, which is what we wanted. */
export const DUPLICATE_KEY = 11000

export function isDuplicateKey(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === DUPLICATE_KEY
}

/** An insertMany({ordered: false}) failure where every write error is a duplicate key. */
export function onlyDuplicates(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  const writeErrors = (err as { writeErrors?: unknown }).writeErrors
  const list = Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : []
  if (list.length === 0) return isDuplicateKey(err)
  return list.every((e: { code?: unknown }) => e.code === DUPLICATE_KEY)
}

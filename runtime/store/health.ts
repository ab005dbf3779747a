import type { Db } from 'mongodb'

/**
 * Answers "is MongoDB down right now?" after a handler failed, so a failure caused by
 * an outage is not counted against the handler. One ping per half second at most.
 */
export function createStoreHealth(db: Db, timeoutMs = 1000): () => Promise<boolean> {
  let checkedAt = 0
  let down = false
  let pending: Promise<boolean> | undefined
  return () => {
    if (Date.now() - checkedAt < 500) return Promise.resolve(down)
    pending ??= db
      .command({ ping: 1 }, { timeoutMS: timeoutMs })
      .then(() => false, () => true)
      .then((result) => {
        down = result
        checkedAt = Date.now()
        pending = undefined
        return result
      })
    return pending
  }
}

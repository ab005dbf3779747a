/*
 * Group commit: writes asked for while one is in flight go out together as the
 * next one. Jobs run concurrently (BullMQ concurrency), and at a steady rate each
 * job holds one event; on a store where every write is a transaction (FerretDB on
 * SQLite: ~500 per second on this machine) one write per job caps the pipeline
 * below what the broker captures. Each caller still waits for its own items to be
 * written, so what a job acknowledges is stored.
 */
export class GroupCommit<T> {
  private readonly write: (items: T[]) => Promise<void>
  private pending: T[] = []
  private waiters: { resolve: () => void; reject: (err: unknown) => void }[] = []
  private busy = false

  constructor(write: (items: T[]) => Promise<void>) {
    this.write = write
  }

  add(items: readonly T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve()
    for (const item of items) this.pending.push(item)
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }))
    if (!this.busy) {
      this.busy = true
      // gathers what other jobs add in the same turn of the event loop
      setImmediate(() => void this.next())
    }
    return done
  }

  private async next(): Promise<void> {
    const items = this.pending
    const waiters = this.waiters
    this.pending = []
    this.waiters = []
    try {
      await this.write(items)
      for (const w of waiters) w.resolve()
    } catch (err) {
      for (const w of waiters) w.reject(err)
    }
    if (this.pending.length > 0) void this.next()
    else this.busy = false
  }
}

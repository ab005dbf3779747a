/*
 * Group commit: writes asked for while one is in flight go out together as the
 * next one. Jobs run concurrently (BullMQ concurrency), and at a steady rate each
 * job holds one event; on a store where every write is a transaction (FerretDB on
 * SQLite: ~500 per second on this machine) one write per job caps the pipeline
 * below what the broker captures. Each caller still waits for its own items to be
 * written, so what a job acknowledges is stored.
 */

interface Caller<T> {
  items: readonly T[]
  resolve: () => void
  reject: (err: unknown) => void
}

export class GroupCommit<T> {
  private readonly write: (items: readonly T[]) => Promise<void>
  private pending: Caller<T>[] = []
  private busy = false

  constructor(write: (items: readonly T[]) => Promise<void>) {
    this.write = write
  }

  add(items: readonly T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve()
    const done = new Promise<void>((resolve, reject) => this.pending.push({ items, resolve, reject }))
    if (!this.busy) {
      this.busy = true
      // gathers what other jobs add in the same turn of the event loop
      setImmediate(() => void this.next())
    }
    return done
  }

  private async next(): Promise<void> {
    const callers = this.pending
    this.pending = []
    try {
      await this.write(callers.flatMap((c) => c.items))
      for (const c of callers) c.resolve()
    } catch (err) {
      if (callers.length === 1) (callers[0] as Caller<T>).reject(err)
      // one caller's bad item (e.g. a document over the size limit) must not fail the
      // others that happened to share its write: each is tried again on its own
      else await Promise.all(callers.map((c) => this.write(c.items).then(c.resolve, c.reject)))
    }
    if (this.pending.length > 0) void this.next()
    else this.busy = false
  }
}

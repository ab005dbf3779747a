import { Job, Queue, type JobJson } from 'bullmq'
import type { Redis } from 'ioredis'
import type { EventType } from '../../common/event-types.ts'
import { BATCH_JOB_OPTIONS, JOB_BATCH, queueName, type BatchJobData } from '../../common/queues.ts'
import { chunkJobs, jobData, type Encoded } from './encode.ts'

/*
 * The last command of the transaction. Redis does not roll a transaction back when
 * one of its commands fails (a job script erroring, say), so the entries are
 * deleted only if every job's hash exists by then: KEYS[1] the store, KEYS[2..] the
 * jobs, ARGV the flush numbers. Returns 1 if it deleted them.
 */
const DELETE_IF_QUEUED = `
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return 0 end
end
redis.call('HDEL', KEYS[1], unpack(ARGV))
return 1
`

type Client = Awaited<ReturnType<Queue['getBackend']>['client']>

/** A flush on its way to BullMQ. */
export interface Flush extends Encoded {
  n: number
  /** Its entry is in the capture store (a flush someone waited on): the pump deletes it with the jobs. */
  stored: boolean
}

export interface PumpOptions {
  /** A connection of the pump's own: nothing else may send commands between its MULTI and EXEC. */
  redis: Redis
  prefix: string
  /** Unique per broker process: job ids are `<tag>.<first flush>.<job>`. */
  tag: string
  /** The capture store's hash (capture-store.ts). */
  storeKey: string
  maxJobEvents: number
  maxJobBytes: number
}

/** What the batcher needs of a pump: this one, or the pump thread's (capture-pump-thread.ts). */
export interface PumpWriter {
  write(flushes: readonly Flush[], retry: boolean): Promise<void>
  close(): Promise<void>
}

/**
 * Writes consecutive flushes as BullMQ batch jobs, one job per event type (more past
 * maxJobEvents / maxJobBytes). Flushes the acknowledgement path stored go in one
 * MULTI … EXEC with the deletion of their entries (DELETE_IF_QUEUED): nothing runs
 * between a transaction's commands, so an entry is removed exactly when its jobs are
 * in their queues (the guarantee capture-store.ts relies on). With the default
 * prefix every key shares one hash tag, as a transaction on Redis Cluster needs.
 *
 * The MULTI is sent as plain commands on the pump's own connection, not as an
 * ioredis transaction object: building one copies every BullMQ script command onto
 * it (ioredis Pipeline's constructor), ~430 µs of CPU per pump against ~20 for the
 * MULTI and EXEC themselves (`docs/performance.md`).
 */
export class Pump implements PumpWriter {
  private readonly opts: PumpOptions
  private readonly queues = new Map<EventType, Queue<BatchJobData>>()
  private readonly templates = new Map<EventType, JobJson>()

  constructor(opts: PumpOptions) {
    this.opts = opts
  }

  /**
   * Adds the jobs of `flushes`. After a failed attempt whose outcome is unknown (the
   * reply was lost), `retry` checks whether the transaction ran before running it again.
   */
  async write(flushes: readonly Flush[], retry: boolean): Promise<void> {
    const first = flushes[0]
    if (!first) return
    const { redis, storeKey, tag } = this.opts
    const stored = flushes.filter((f) => f.stored).map((f) => String(f.n))
    if (retry && stored.length > 0 && (await redis.hexists(storeKey, stored[0] as string)) === 0) return
    const chunks = chunkJobs(flushes, this.opts.maxJobEvents, this.opts.maxJobBytes)
    const now = Date.now()
    const client = await this.queue('published').getBackend().client
    // Every command is sent before any reply is awaited (one round trip), and corked:
    // one writev for all of them rather than a syscall each (ioredis writes each command
    // to the socket as it is called).
    const stream = redis.status === 'ready' ? redis.stream : undefined
    stream?.cork()
    if (stored.length === 0) {
      // nobody waited on these: a job added twice after a lost reply is one job (same id)
      const adds = chunks.map((c, j) => this.add(client, c.type, `${tag}.${first.n}.${j}`, jobData(c), now))
      stream?.uncork()
      await Promise.all(adds)
      return
    }
    const sent: Promise<unknown>[] = [redis.multi({ pipeline: false })]
    const jobKeys: string[] = []
    chunks.forEach((c, j) => {
      const id = `${tag}.${first.n}.${j}`
      jobKeys.push(this.queue(c.type).toKey(id))
      // called now, not in a later microtask: each command must go out between MULTI and EXEC, in order
      sent.push(this.add(client, c.type, id, jobData(c), now))
    })
    sent.push(redis.eval(DELETE_IF_QUEUED, 1 + jobKeys.length, storeKey, ...jobKeys, ...stored))
    const exec = redis.exec()
    stream?.uncork()
    // a command refused while queueing (its reply is an error, not QUEUED) makes Redis discard the EXEC
    const [queued, results] = await Promise.all([Promise.allSettled(sent), exec])
    const refused = queued.find((r) => r.status === 'rejected')
    if (refused) throw (refused as PromiseRejectedResult).reason
    if (!results) throw new Error('capture pump: transaction discarded')
    for (const [err] of results) if (err) throw err
    if (results[results.length - 1]?.[1] !== 1) throw new Error('capture pump: a job was not added; the capture store keeps its entries')
  }

  /** Closes the pump's queue objects (not the connection, which the caller owns). */
  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()))
  }

  /** Sends the job's command before returning (addJobToTransaction's synchronous part); never throws synchronously. */
  private add(client: Client, type: EventType, id: string, data: string, timestamp: number): Promise<unknown> {
    try {
      const queue = this.queue(type)
      const job: JobJson = { ...this.template(type, queue), id, data, timestamp }
      return queue.getBackend().addJobToTransaction(client, job, id)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private queue(type: EventType): Queue<BatchJobData> {
    let q = this.queues.get(type)
    if (!q) {
      q = new Queue<BatchJobData>(queueName(type), { connection: this.opts.redis, prefix: this.opts.prefix })
      // the connection's owner reports Redis errors; without a listener BullMQ prints each one
      q.on('error', () => {})
      this.queues.set(type, q)
    }
    return q
  }

  /** A batch job's JSON as BullMQ builds it (Job.asJSON), once per queue: only id, data and timestamp change. */
  private template(type: EventType, queue: Queue<BatchJobData>): JobJson {
    let t = this.templates.get(type)
    if (!t) this.templates.set(type, (t = new Job(queue, JOB_BATCH, { v: 1, events: [] }, { ...BATCH_JOB_OPTIONS }).asJSON()))
    return t
  }
}

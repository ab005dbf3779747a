import { randomUUID } from 'node:crypto'
import { DelayedError, type Job, type Queue } from 'bullmq'
import type { WireEvent } from '../../common/events.ts'
import type { Logger } from '../../common/logger.ts'
import type { RetryJobData } from '../../common/queues.ts'
import type { InvokeResult, Invoker } from '../invoke.ts'
import type { LoadedHandler } from '../load.ts'
import { parkedJobId, parkedRetry, retryOrigin } from '../redelivery/index.ts'
import type { ChainLink, Sequencer } from './sequencer.ts'

/*
 * Ordered handlers (config `ordered: true`). Batches of one queue run concurrently on
 * several workers, so events of a client reach workers out of order. Each event
 * carries `prev`, the seq of its connection's previous event of the same type; a
 * Redis chain per (handler, client, epoch) runs an event only once its `prev` is
 * finished. An event that must wait becomes a delayed BullMQ retry job (durable: a
 * worker may die meanwhile), woken by `promote()` when its predecessor finishes; its
 * delay is the gap timeout, after which it runs even if the predecessor never came.
 */

/** A retry job that has waited for its turn since `parkedAt` (`outside`: how older workers marked a parked replay). */
export type OrderedRetryData = RetryJobData & { parkedAt?: number; outside?: true }

/** How long an event waits when another run of its (handler, client) holds the lock. */
const BUSY_DELAY_MS = 250

type ClientWire = Extract<WireEvent, { clientId: string | null; epoch: number }>

/** Events with a client and a connection: the ones an ordered handler orders. */
function chainOf(handler: LoadedHandler, wire: WireEvent, linked = true): ChainLink | undefined {
  if (!('epoch' in wire) || typeof (wire as ClientWire).clientId !== 'string') return undefined
  const e = wire as ClientWire & { clientId: string }
  return { handler: handler.name, clientId: e.clientId, epoch: e.epoch, seq: e.seq, prev: linked ? e.prev : undefined }
}

/** One client's events of one batch for one ordered handler, in capture order. */
export interface OrderedGroup {
  handler: LoadedHandler
  items: { wire: WireEvent; wanted: boolean }[]
}

/**
 * Puts the event in its (handler, client) group for every ordered handler of its type,
 * wanted by the handler or not (the chain steps over unwanted ones). Returns the
 * handlers it was grouped for: the batch does not run those itself.
 */
export function groupOrdered(groups: Map<string, OrderedGroup>, ordered: readonly LoadedHandler[], wire: WireEvent): ReadonlySet<LoadedHandler> {
  const taken = new Set<LoadedHandler>()
  for (const handler of ordered) {
    if (handler.event !== wire.type) continue
    const link = chainOf(handler, wire)
    if (!link) continue
    const key = `${handler.name}\n${link.clientId}`
    let group = groups.get(key)
    if (!group) groups.set(key, (group = { handler, items: [] }))
    group.items.push({ wire, wanted: handler.wants(wire) })
    taken.add(handler)
  }
  return taken
}

export interface OrderedDeps {
  sequencer: Sequencer
  invoker: Invoker
  /** The queue of this event type: parked events wait in it as delayed retry jobs. */
  queue: Queue
  gapTimeoutMs: number
  log: Logger
}

/** An event's turn in its chain: the lock is held until finish() or release(). */
export class Turn {
  private readonly runs: OrderedRuns
  readonly link: ChainLink
  private readonly token: string
  private readonly claim: 'run' | 'forced' | 'late'

  constructor(runs: OrderedRuns, link: ChainLink, token: string, claim: 'run' | 'forced' | 'late') {
    this.runs = runs
    this.link = link
    this.token = token
    this.claim = claim
  }

  /** Runs one attempt, renewing the lock meanwhile (a handler may run up to its timeout). */
  async attempt(handler: LoadedHandler, wire: WireEvent, attempt: number): Promise<InvokeResult> {
    const { sequencer, invoker, log } = this.runs.deps
    const hold = sequencer.hold(this.link, this.token, () =>
      log.warn({ handler: handler.name, clientId: this.link.clientId, eventId: wire.id }, 'ordered handler: lock lost while running (event loop stalled longer than the lock duration?)'))
    try {
      return await invoker.invoke(handler, wire, attempt)
    } finally {
      hold.stop()
    }
  }

  /** Succeeded or dead-lettered: the chain moves past it and wakes the next event. */
  async finish(): Promise<void> {
    // a late event (jumped over at a gap timeout) runs outside the chain: the cursor is already past it
    await this.runs.wake(await this.runs.deps.sequencer.finish(this.link, this.token, this.claim !== 'late'))
  }

  /** Failed and will be retried: later events keep waiting for it. */
  async release(): Promise<void> {
    await this.runs.deps.sequencer.release(this.link, this.token)
  }
}

export class OrderedRuns {
  readonly deps: OrderedDeps

  constructor(deps: OrderedDeps) {
    this.deps = deps
  }

  /** Wakes a parked event; a job that is not delayed (already running, or gone) needs no waking. */
  async wake(jobId: string | null | undefined): Promise<void> {
    if (!jobId) return
    const job = await this.deps.queue.getJob(jobId)
    await job?.promote().catch(() => {})
  }

  /**
   * One client's events for one ordered handler from one batch, in capture order;
   * `wanted` false for events its topic filter skips (they still advance the chain).
   * `failed` decides what a failed first attempt becomes (a retry job, or a dead
   * letter written before it returns); while it retries, the chain waits for it.
   */
  async runGroup(
    handler: LoadedHandler,
    items: readonly { wire: WireEvent; wanted: boolean }[],
    failed: (wire: WireEvent, result: Extract<InvokeResult, { ok: false }>) => Promise<'retry' | 'dead'>,
    outside = false,
  ): Promise<void> {
    for (const { wire, wanted } of items) {
      const link = chainOf(handler, wire, !outside) as ChainLink
      if (!wanted) {
        await this.wake(await this.deps.sequencer.pass(link))
        continue
      }
      const token = randomUUID()
      const jobId = parkedJobId(wire.id, handler.name, outside)
      const claim = await this.deps.sequencer.claim(link, token, { jobId })
      if (claim === 'done') continue
      if (claim === 'wait' || claim === 'busy') {
        await this.park(wire, handler, link, claim, jobId, outside)
        continue
      }
      if (claim === 'forced') this.logForced(link, wire)
      const turn = new Turn(this, link, token, claim)
      const result = await turn.attempt(handler, wire, 1)
      if (result.ok) {
        await turn.finish()
        continue
      }
      try {
        if ((await failed(wire, result)) === 'dead') await turn.finish()
      } finally {
        await turn.release()
      }
    }
  }

  /**
   * A retry job's turn: undefined when the event has no chain (no client), 'done' when
   * it was finished already; throws DelayedError (the job waits, no attempt spent) when
   * it is not its turn. Replays and dead letters retried by hand run outside the chain.
   */
  async takeTurn(job: Job<OrderedRetryData>, wire: WireEvent, handler: LoadedHandler, bullToken: string | undefined): Promise<Turn | 'done' | undefined> {
    const data = job.data
    const outside = retryOrigin(job) !== 'retry'
    const link = chainOf(handler, wire, !outside)
    if (!link) return undefined
    const token = randomUUID()
    const force = data.parkedAt !== undefined && Date.now() - data.parkedAt >= this.deps.gapTimeoutMs
    const claim = await this.deps.sequencer.claim(link, token, { jobId: job.id, force })
    if (claim === 'done') return 'done'
    if (claim === 'wait' || claim === 'busy') {
      if (claim === 'wait' && data.parkedAt === undefined) await job.updateData({ ...data, parkedAt: Date.now() })
      await job.moveToDelayed(Date.now() + (claim === 'wait' ? this.deps.gapTimeoutMs : BUSY_DELAY_MS), bullToken)
      // the predecessor may have finished while this job was still active, when promote() could not wake it
      if (claim === 'wait' && (await this.deps.sequencer.cursor(link)) >= (link.prev ?? 0)) await this.wake(job.id)
      throw new DelayedError()
    }
    if (claim === 'forced') this.logForced(link, wire)
    return new Turn(this, link, token, claim)
  }

  /** Parks an event as a delayed retry job: woken by its predecessor, else at the gap timeout. */
  private async park(wire: WireEvent, handler: LoadedHandler, link: ChainLink, claim: 'wait' | 'busy', jobId: string, outside: boolean): Promise<void> {
    const job = parkedRetry(wire, handler, jobId, claim === 'wait' ? this.deps.gapTimeoutMs : BUSY_DELAY_MS, outside)
    await this.deps.queue.add(job.name, job.data, job.opts)
    // the predecessor may have finished before the job existed, when nothing could wake it
    if (claim === 'wait' && (await this.deps.sequencer.cursor(link)) >= (link.prev ?? 0)) await this.wake(jobId)
  }

  private logForced(link: ChainLink, wire: WireEvent): void {
    this.deps.log.warn({ handler: link.handler, clientId: link.clientId, eventId: wire.id, epoch: link.epoch, seq: link.seq, prev: link.prev, gapTimeoutMs: this.deps.gapTimeoutMs },
      'ordered handler: an earlier event of this client never arrived within the gap timeout; running this one without it')
  }
}

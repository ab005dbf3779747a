import { EVENT_TYPES, type EventType } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'
import type { Stored } from './sink.ts'

/** Events gathered in one turn of the event loop, and who waits for them to be stored. */
export interface Gathered {
  events: WireEvent[]
  bytes: number
  waiters: Stored[]
}

/**
 * Events captured and not yet in BullMQ, for the batcher (batcher.ts) and the capture
 * thread's sink (capture-thread-sink.ts) alike: the bound publishers are held back at,
 * who waits for room or for nothing left, and the per-type counts the metrics read at
 * scrape time (so capture pays one increment).
 */
export class CaptureBacklog {
  readonly captured = Object.fromEntries(EVENT_TYPES.map((t) => [t, 0])) as Record<EventType, number>
  private events = 0
  private bytes = 0
  private drainWaiters: Stored[] = []
  private idleWaiters: (() => void)[] = []

  constructor(private readonly maxEvents: number, private readonly maxBytes: number) {}

  /** Adds one event to `into`; it counts against the bound until released. */
  hold(into: Gathered, event: WireEvent, bytes: number, onStored?: Stored): void {
    into.events.push(event)
    into.bytes += bytes
    if (onStored) into.waiters.push(onStored)
    this.events++
    this.bytes += bytes
    this.captured[event.type]++
  }

  /** Events and bytes held, not yet in BullMQ. */
  get held(): { events: number; bytes: number } {
    return { events: this.events, bytes: this.bytes }
  }

  get saturated(): boolean {
    return this.events >= this.maxEvents || this.bytes >= this.maxBytes
  }

  /** Calls `cb` once the backlog is below its bound again (at once if it is). */
  whenNotSaturated(cb: Stored): void {
    if (!this.saturated) cb(null)
    else this.drainWaiters.push(cb)
  }

  /** Resolves once nothing is held. */
  idle(): Promise<void> {
    if (this.events === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Events now in BullMQ, or left to recovery: they no longer count. Call wake() after. */
  release(events: number, bytes: number): void {
    this.events -= events
    this.bytes -= bytes
  }

  /** Calls who waits for room, once there is some, and for nothing held, once nothing is. */
  wake(): void {
    if (!this.saturated && this.drainWaiters.length > 0) for (const w of this.drainWaiters.splice(0)) w(null)
    if (this.events === 0) for (const w of this.idleWaiters.splice(0)) w()
  }

  /** Capture stopped for good: nobody waits any more. */
  fail(err: Error): void {
    for (const w of this.drainWaiters.splice(0)) w(err)
    for (const w of this.idleWaiters.splice(0)) w()
  }
}

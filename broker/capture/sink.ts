import type { EventType } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'

/** Called once Redis holds an event (or with an error when capture stopped first). */
export type Stored = (err: Error | null) => void

/**
 * Where captured events go: the batcher on the broker's own thread (batcher.ts), or
 * the capture thread (capture-thread-sink.ts, MQFN_CAPTURE_THREAD). The event modules
 * see only this.
 */
export interface EventSink {
  /** Queues one event; `onStored` is called once Redis holds it (QoS 1/2 acknowledgements wait on it). */
  capture(event: WireEvent, bytes: number, onStored?: Stored): void
  /** True when the backlog bound is reached: callers that can wait (publishers) should. */
  readonly saturated: boolean
  /** Calls `cb` once the backlog is below its bound again (at once if it is). */
  whenNotSaturated(cb: Stored): void
  /** Events and bytes held in memory, not yet in BullMQ. */
  readonly backlog: { events: number; bytes: number }
  /** Events captured so far, per type (read by the metrics at scrape time). */
  readonly captured: Record<EventType, number>
}

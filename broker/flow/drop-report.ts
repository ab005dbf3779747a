import type { Client } from 'aedes'
import type { DropReason } from './outbound-queue.ts'

/** Messages not delivered, by reason, for /metrics. */
export type DropCounts = Record<DropReason | OfflineDropReason, number>

/** Why a message was not kept for an offline persistent session. */
export type OfflineDropReason = 'offline-queue-full' | 'session-expired'

export const DROP_REASONS: readonly (keyof DropCounts)[] = ['queue-full-qos0', 'queue-full-oldest', 'queue-full-disconnect', 'offline-queue-full', 'session-expired']

/** Receives one summary per client and second in which it lost messages. */
export type DropSummary = (client: Client, reason: DropReason, count: number) => void

/**
 * Counts every dropped message at once (a plain increment, read by /metrics at scrape
 * time) and reports drops per client at most once a second with their count, so a
 * client losing thousands of messages a second makes one event a second, not thousands.
 */
export class DropReport {
  readonly counts: DropCounts = { 'queue-full-qos0': 0, 'queue-full-oldest': 0, 'queue-full-disconnect': 0, 'offline-queue-full': 0, 'session-expired': 0 }
  private readonly pending = new Map<Client, Map<DropReason, number>>()
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly summary: DropSummary, private readonly periodMs = 1000) {}

  dropped(client: Client, reason: DropReason, count: number): void {
    this.counts[reason] += count
    let byReason = this.pending.get(client)
    if (!byReason) this.pending.set(client, (byReason = new Map()))
    byReason.set(reason, (byReason.get(reason) ?? 0) + count)
    this.timer ??= setTimeout(() => this.flush(), this.periodMs).unref()
  }

  /** Counted only: these have no connected client to report on (the event is the session's). */
  droppedOffline(reason: OfflineDropReason, count: number): void {
    this.counts[reason] += count
  }

  flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const pending = [...this.pending]
    this.pending.clear()
    for (const [client, byReason] of pending) {
      for (const [reason, count] of byReason) this.summary(client, reason, count)
    }
  }

  close(): void {
    this.flush()
  }
}

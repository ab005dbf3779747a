import { mqfnError } from '../../common/errors.ts'
import type { DisconnectReason } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'

/*
 * What anonymous network peers can make the broker store (issue 14 item 10). A socket
 * that never authenticates costs its sender one TCP connection; without this each
 * became a stored `connectionError` event, so 8,000 cheap sockets were 8,000 events.
 * Per remote address and fixed window (connectionErrorWindowMs):
 * - the first `perAddress` connection errors are captured one by one, as before;
 * - past that they are only counted, and when the window ends one summary event per
 *   address and reason carries the count;
 * - connections the connect-rate limit closes are never captured one by one: they
 *   are counted from the first and summarised the same way.
 * At most MAX_ADDRESSES addresses are told apart per window; the rest share one
 * summary without an address, so a spread of sources cannot grow the table either.
 */

/** Addresses tracked per window; further ones are counted together. */
export const MAX_ADDRESSES = 10_000

export interface Summary {
  /** undefined: the addresses past MAX_ADDRESSES, together. */
  remoteAddress: string | undefined
  reason: DisconnectReason
  count: number
  /** Counted by the connect-rate limit (no socket was read), else a connection error past the burst. */
  rateLimited: boolean
  windowMs: number
}

interface Entry {
  recorded: number
  /** Counts not captured one by one, by reason ('' for the connect rate). */
  counted: Map<DisconnectReason | '', number>
}

const RATE = ''

export class ConnectionErrorLog {
  /** Connections closed by connectRatePerIp, since start. */
  rateRefused = 0
  /** Connection errors past the per-address burst, summarised instead of captured, since start. */
  summarised = 0
  private byAddress = new Map<string, Entry>()
  private readonly timer: NodeJS.Timeout

  /**
   * @param perAddress errors captured one by one per address and window; 0 captures every one.
   * @param onSummary called at each window's end, once per address and reason with something counted.
   */
  constructor(private readonly perAddress: number, private readonly windowMs: number, private readonly onSummary: (s: Summary) => void) {
    this.timer = setInterval(() => this.flush(), windowMs).unref()
  }

  /** Should this connection error be captured as its own event? Otherwise it has been counted. */
  admit(address: string | undefined, reason: DisconnectReason): boolean {
    if (this.perAddress === 0) return true
    const entry = this.entry(address)
    if (entry.recorded < this.perAddress) {
      entry.recorded++
      return true
    }
    entry.counted.set(reason, (entry.counted.get(reason) ?? 0) + 1)
    this.summarised++
    return false
  }

  /** A connection the connect-rate limit closed before reading it. */
  rateLimited(address: string | undefined): void {
    const entry = this.entry(address)
    entry.counted.set(RATE, (entry.counted.get(RATE) ?? 0) + 1)
    this.rateRefused++
  }

  /** Ends the window: one summary per address and reason, then a fresh table. */
  flush(): void {
    const ended = this.byAddress
    this.byAddress = new Map()
    for (const [key, entry] of ended) {
      for (const [reason, count] of entry.counted) {
        this.onSummary({
          remoteAddress: key === '*' ? undefined : key,
          reason: reason === RATE ? 'limit-exceeded' : reason,
          count,
          rateLimited: reason === RATE,
          windowMs: this.windowMs,
        })
      }
    }
  }

  /** Flushes what the current window holds. */
  close(): void {
    clearInterval(this.timer)
    this.flush()
  }

  private entry(address: string | undefined): Entry {
    let key = address ?? '*'
    if (!this.byAddress.has(key) && this.byAddress.size >= MAX_ADDRESSES) key = '*'
    let entry = this.byAddress.get(key)
    if (!entry) {
      entry = { recorded: 0, counted: new Map() }
      this.byAddress.set(key, entry)
    }
    return entry
  }
}

export interface SummaryContext {
  id: string
  ts: number
  brokerId: string
  /** A fresh epoch: a summary stands for no one connection. */
  epoch: number
  connectRatePerIp: number
  perAddress: number
}

/** The `connectionError` event a summary becomes: `count` says how many it stands for. */
export function summaryEvent(s: Summary, c: SummaryContext): WireEvent {
  const from = s.remoteAddress ?? `more than ${MAX_ADDRESSES} other addresses`
  const seconds = Math.round(s.windowMs / 1000)
  const error = s.rateLimited
    ? { code: 'MQFN_ERR_LIMIT_EXCEEDED', message: mqfnError('MQFN_ERR_LIMIT_EXCEEDED', 'connectRatePerIp', `${s.count} connections from ${from} closed in ${seconds} s, more than ${c.connectRatePerIp} a second (MQFN_CONNECT_RATE_PER_IP)`).message }
    : { message: `${s.count} more connection errors (${s.reason}) from ${from} in ${seconds} s, past the ${c.perAddress} recorded one by one (MQFN_CONNECTION_ERRORS_PER_IP)` }
  return {
    id: c.id,
    ts: c.ts,
    brokerId: c.brokerId,
    type: 'connectionError',
    clientId: null,
    epoch: c.epoch,
    seq: 1,
    prev: 0,
    ...(s.remoteAddress !== undefined ? { remoteAddress: s.remoteAddress } : {}),
    reason: s.reason,
    error,
    count: s.count,
  }
}

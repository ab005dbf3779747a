/**
 * `perSecond` tokens a second, holding at most one second's worth: a client may
 * burst up to its rate, then goes at the rate. Time is monotonic (performance.now),
 * so a wall-clock jump neither frees nor blocks anyone.
 */
export class TokenBucket {
  private tokens: number
  private at: number

  constructor(private readonly perSecond: number, private readonly now: () => number = () => performance.now()) {
    if (!(perSecond > 0)) throw new RangeError(`perSecond must be > 0, got ${perSecond}`)
    this.tokens = perSecond
    this.at = now()
  }

  /** Takes one token when there is one. */
  take(): boolean {
    this.refill()
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Milliseconds until a token is available (0 when one is). */
  msUntilNext(): number {
    this.refill()
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.perSecond) * 1000)
  }

  /** Back to its full burst: nothing to remember about this key any more. */
  isFull(): boolean {
    this.refill()
    return this.tokens >= this.perSecond
  }

  private refill(): void {
    const t = this.now()
    this.tokens = Math.min(this.perSecond, this.tokens + ((t - this.at) / 1000) * this.perSecond)
    this.at = t
  }
}

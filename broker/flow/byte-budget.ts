/**
 * A byte rate that a packet may overdraw: the bytes of a packet are charged once its
 * size is known (its fixed header has arrived, and part of it may be with aedes
 * already), and the next packet waits until the balance is positive again. Over any
 * second a client gets its rate plus at most one packet; the balance holds at most one
 * second's worth. Monotonic time, as TokenBucket.
 */
export class ByteBudget {
  private balance: number
  private at: number

  constructor(private readonly perSecond: number, private readonly now: () => number = () => performance.now()) {
    if (!(perSecond > 0)) throw new RangeError(`perSecond must be > 0, got ${perSecond}`)
    this.balance = perSecond
    this.at = now()
  }

  charge(bytes: number): void {
    this.refill()
    this.balance -= bytes
  }

  /** Whether a packet may start now. */
  open(): boolean {
    this.refill()
    return this.balance > 0
  }

  /** Milliseconds until the balance is positive again. */
  msUntilOpen(): number {
    this.refill()
    return this.balance > 0 ? 0 : Math.ceil(((1 - this.balance) / this.perSecond) * 1000)
  }

  private refill(): void {
    const t = this.now()
    this.balance = Math.min(this.perSecond, this.balance + ((t - this.at) / 1000) * this.perSecond)
    this.at = t
  }
}

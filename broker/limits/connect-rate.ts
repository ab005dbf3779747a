import { TokenBucket } from './token-bucket.ts'

/**
 * CONNECT attempts per second per IP address (connectRatePerIp). An address that
 * has been quiet for a second is back to a full bucket and is forgotten, so the map
 * holds only addresses seen within about the last second plus one sweep interval.
 */
export class ConnectRate {
  private readonly buckets = new Map<string, TokenBucket>()
  private readonly sweeper: NodeJS.Timeout

  constructor(private readonly perSecond: number, sweepMs = 5000, private readonly now?: () => number) {
    this.sweeper = setInterval(() => this.prune(), sweepMs).unref()
  }

  allow(address: string): boolean {
    let bucket = this.buckets.get(address)
    if (!bucket) {
      bucket = new TokenBucket(this.perSecond, this.now)
      this.buckets.set(address, bucket)
    }
    return bucket.take()
  }

  /** Addresses currently remembered. */
  get size(): number {
    return this.buckets.size
  }

  prune(): void {
    for (const [address, bucket] of this.buckets) if (bucket.isFull()) this.buckets.delete(address)
  }

  close(): void {
    clearInterval(this.sweeper)
    this.buckets.clear()
  }
}

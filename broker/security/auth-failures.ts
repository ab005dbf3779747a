/**
 * Failed logins per IP address in a fixed window. Past the limit an address is
 * refused without checking its credentials (no scrypt work, no token fetch)
 * until its window ends, which blunts password guessing from one host.
 */
export class AuthFailures {
  private readonly byAddress = new Map<string, { count: number; since: number }>()
  private readonly sweeper: NodeJS.Timeout

  constructor(private readonly limit: number, private readonly windowMs: number) {
    // entries of quiet addresses would otherwise stay forever
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, windowMs)).unref()
  }

  blocked(address: string | undefined): boolean {
    if (!address) return false
    const entry = this.byAddress.get(address)
    if (!entry) return false
    if (Date.now() - entry.since >= this.windowMs) {
      this.byAddress.delete(address)
      return false
    }
    return entry.count >= this.limit
  }

  record(address: string | undefined): void {
    if (!address) return
    const t = Date.now()
    const entry = this.byAddress.get(address)
    if (!entry || t - entry.since >= this.windowMs) this.byAddress.set(address, { count: 1, since: t })
    else entry.count++
  }

  private sweep(): void {
    const t = Date.now()
    for (const [address, entry] of this.byAddress) if (t - entry.since >= this.windowMs) this.byAddress.delete(address)
  }

  close(): void {
    clearInterval(this.sweeper)
  }
}

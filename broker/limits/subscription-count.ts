import type { Client } from 'aedes'

type WithSubscriptions = Client & { subscriptions: Record<string, unknown> }

/**
 * Subscriptions per client (maxSubscriptionsPerClient). aedes authorizes the filters
 * of one SUBSCRIBE side by side and adds them to `client.subscriptions` only later,
 * so filters granted but not added yet are counted here until aedes reports them
 * subscribed. Kept per client object: nothing outlives the connection.
 */
export class SubscriptionCount {
  private readonly granting = new WeakMap<Client, Set<string>>()

  constructor(readonly max: number) {}

  /** True when `filter` may be added: it is held already, or there is room. */
  admit(client: Client, filter: string): boolean {
    const held = (client as WithSubscriptions).subscriptions
    let pending = this.granting.get(client)
    if (Object.hasOwn(held, filter) || pending?.has(filter)) return true
    let count = 0
    for (const _ in held) count++
    if (pending) for (const f of pending) if (!Object.hasOwn(held, f)) count++
    if (count >= this.max) return false
    if (!pending) this.granting.set(client, (pending = new Set()))
    pending.add(filter)
    return true
  }

  /** aedes' `subscribe` event: these filters are in client.subscriptions now (or were refused). */
  settled(client: Client, filters: readonly string[]): void {
    const pending = this.granting.get(client)
    if (!pending) return
    for (const f of filters) pending.delete(f)
    if (pending.size === 0) this.granting.delete(client)
  }
}

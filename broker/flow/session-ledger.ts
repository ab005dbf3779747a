import type { Redis } from 'ioredis'

/** Bounds of one persistent session's stored queue (broker/config.ts "Flow"). */
export interface SessionBounds {
  maxMessages: number
  maxBytes: number
}

/**
 * What the broker knows of persistent sessions beyond aedes' store: how many messages
 * and bytes each has queued, and since when it is offline. Kept where the sessions are:
 * in this process for `memory` persistence, in Redis for `redis`, so that every broker
 * of a cluster counts against the same bound and any one of them expires a session.
 */
export interface SessionLedger {
  /** Counts a message into the session's queue unless that passes a bound (then false, not counted). */
  admit(clientId: string, bytes: number): Promise<boolean>
  /** A queued message left the store (acknowledged, expired, or the queue was emptied). */
  release(clientId: string, bytes: number): void
  offline(clientId: string, at: number): void
  online(clientId: string): void
  /** Takes the sessions offline since before `before` out of the ledger; each is returned to one caller only. */
  takeExpired(before: number): Promise<string[]>
}

export class MemoryLedger implements SessionLedger {
  private readonly queued = new Map<string, { messages: number; bytes: number }>()
  private readonly since = new Map<string, number>()

  constructor(private readonly bounds: Readonly<SessionBounds>) {}

  async admit(clientId: string, bytes: number): Promise<boolean> {
    const q = this.queued.get(clientId) ?? { messages: 0, bytes: 0 }
    if (q.messages + 1 > this.bounds.maxMessages || q.bytes + bytes > this.bounds.maxBytes) return false
    q.messages++
    q.bytes += bytes
    this.queued.set(clientId, q)
    return true
  }

  release(clientId: string, bytes: number): void {
    const q = this.queued.get(clientId)
    if (!q) return
    q.messages = Math.max(0, q.messages - 1)
    q.bytes = Math.max(0, q.bytes - bytes)
    if (q.messages === 0) this.queued.delete(clientId)
  }

  offline(clientId: string, at: number): void {
    this.since.set(clientId, at)
  }

  online(clientId: string): void {
    this.since.delete(clientId)
  }

  async takeExpired(before: number): Promise<string[]> {
    const expired: string[] = []
    for (const [id, at] of this.since) if (at < before) expired.push(id)
    for (const id of expired) {
      this.since.delete(id)
      this.queued.delete(id)
    }
    return expired
  }
}

// count and bytes move together, and a message past either bound is not counted at all
const ADMIT = `
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local b = redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[2])
if n > tonumber(ARGV[3]) or b > tonumber(ARGV[4]) then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
  redis.call('HINCRBY', KEYS[2], ARGV[1], -tonumber(ARGV[2]))
  return 0
end
return 1`

const RELEASE = `
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
local b = redis.call('HINCRBY', KEYS[2], ARGV[1], -tonumber(ARGV[2]))
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
elseif b < 0 then
  redis.call('HSET', KEYS[2], ARGV[1], 0)
end
return n`

/** The ledger in Redis, beside aedes-persistence-redis' keys; `prefix` holds a hash tag, so one slot. */
export class RedisLedger implements SessionLedger {
  private readonly keys: { count: string; bytes: string; offline: string }

  constructor(private readonly redis: Redis, prefix: string, private readonly bounds: Readonly<SessionBounds>) {
    this.keys = { count: `${prefix}:flow:queued`, bytes: `${prefix}:flow:queued-bytes`, offline: `${prefix}:flow:offline` }
  }

  async admit(clientId: string, bytes: number): Promise<boolean> {
    const ok = await this.redis.eval(ADMIT, 2, this.keys.count, this.keys.bytes, clientId, bytes, this.bounds.maxMessages, this.bounds.maxBytes)
    return ok === 1
  }

  release(clientId: string, bytes: number): void {
    this.redis.eval(RELEASE, 2, this.keys.count, this.keys.bytes, clientId, bytes).catch(() => {})
  }

  offline(clientId: string, at: number): void {
    this.redis.zadd(this.keys.offline, at, clientId).catch(() => {})
  }

  online(clientId: string): void {
    this.redis.zrem(this.keys.offline, clientId).catch(() => {})
  }

  async takeExpired(before: number): Promise<string[]> {
    const candidates = await this.redis.zrangebyscore(this.keys.offline, 0, `(${before}`, 'LIMIT', 0, 1000)
    const taken: string[] = []
    for (const id of candidates) {
      // ZREM answers 1 to one broker only: that one expires the session
      if ((await this.redis.zrem(this.keys.offline, id)) === 1) {
        taken.push(id)
        await this.redis.hdel(this.keys.count, id)
        await this.redis.hdel(this.keys.bytes, id)
      }
    }
    return taken
  }
}

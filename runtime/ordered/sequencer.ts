import type { Redis } from 'ioredis'
import { CLAIM, FINISH, PASS, RENEW } from './scripts.ts'

/**
 * Where one event stands in its chain. `prev` undefined: the event carries no link
 * (an older broker, a will published after its session, a replay or a dead letter
 * retried by hand), so it only takes the lock and leaves the chain alone.
 */
export interface ChainLink {
  handler: string
  clientId: string
  epoch: number
  seq: number
  prev: number | undefined
}

/**
 * - `run`: next in its chain, lock taken
 * - `forced`: run although an earlier event was never seen (gap timeout), lock taken
 * - `late`: an event the chain jumped over, arriving after all; lock taken, the chain stays
 * - `done`: finished already (a batch processed again): nothing to do
 * - `wait`: an earlier event is not finished yet
 * - `busy`: next, but another run of this (handler, client) holds the lock
 */
export type Claim = 'run' | 'forced' | 'late' | 'done' | 'wait' | 'busy'

/** A chain's state outlives its last event by this long (refreshed on every write). */
const CHAIN_TTL_SECONDS = 7 * 86_400

type Commands = {
  mqfnOrderedClaim(k1: string, k2: string, k3: string, ...argv: (string | number)[]): Promise<Claim>
  mqfnOrderedFinish(k1: string, k2: string, k3: string, ...argv: (string | number)[]): Promise<string | null>
  mqfnOrderedPass(k1: string, k2: string, k3: string, ...argv: (string | number)[]): Promise<string | null>
  mqfnOrderedRenew(k1: string, ...argv: (string | number)[]): Promise<number>
}

/** Per-(handler, client) sequencing in Redis, on the worker's BullMQ connection. */
export class Sequencer {
  private readonly redis: Redis & Commands
  private readonly prefix: string
  readonly lockMs: number

  /** `prefix`: the queues' prefix, so these keys share its Redis Cluster hash slot. */
  constructor(redis: Redis, prefix: string, lockMs: number) {
    redis.defineCommand('mqfnOrderedClaim', { numberOfKeys: 3, lua: CLAIM })
    redis.defineCommand('mqfnOrderedFinish', { numberOfKeys: 3, lua: FINISH })
    redis.defineCommand('mqfnOrderedPass', { numberOfKeys: 3, lua: PASS })
    redis.defineCommand('mqfnOrderedRenew', { numberOfKeys: 1, lua: RENEW })
    this.redis = redis as Redis & Commands
    this.prefix = prefix
    this.lockMs = lockMs
  }

  private keys(e: ChainLink): [string, string, string] {
    // handler names hold no ':', and the epoch (last, numeric) ends the chain key, so
    // a client id with ':' in it cannot make two chains share a key
    const chain = `${this.prefix}:ordered:${e.handler}:${e.clientId}:${e.epoch}`
    return [chain, `${chain}:pending`, `${this.prefix}:ordered-lock:${e.handler}:${e.clientId}`]
  }

  /** `jobId`: the job that will hold this event while it waits (woken when its predecessor finishes). */
  claim(e: ChainLink, token: string, opts: { jobId?: string | undefined; force?: boolean } = {}): Promise<Claim> {
    return this.redis.mqfnOrderedClaim(...this.keys(e), e.seq, e.prev ?? -1, token, this.lockMs, opts.jobId ?? '', opts.force ? '1' : '0', CHAIN_TTL_SECONDS)
  }

  /** Releases the lock and, with `advance`, moves the chain past the event; returns the parked job to wake. */
  async finish(e: ChainLink, token: string, advance: boolean): Promise<string | null> {
    return (await this.redis.mqfnOrderedFinish(...this.keys(e), e.seq, token, advance && e.prev !== undefined ? '1' : '0', CHAIN_TTL_SECONDS)) ?? null
  }

  /** An event of the chain the handler does not want; returns the parked job to wake. */
  async pass(e: ChainLink): Promise<string | null> {
    if (e.prev === undefined) return null
    return (await this.redis.mqfnOrderedPass(...this.keys(e), e.seq, e.prev, CHAIN_TTL_SECONDS)) ?? null
  }

  /** Releases the lock, leaving the chain waiting for this event (it failed and will be retried). */
  async release(e: ChainLink, token: string): Promise<void> {
    await this.redis.mqfnOrderedRenew(this.keys(e)[2], token, 0)
  }

  /** Seq of the chain's last finished event. */
  async cursor(e: ChainLink): Promise<number> {
    return Number((await this.redis.hget(this.keys(e)[0], 'c')) ?? 0)
  }

  /**
   * Keeps the lock while the handler runs (it may take up to its timeout); a killed
   * worker stops renewing, and after lockMs another worker may take the client.
   */
  hold(e: ChainLink, token: string, onLost: () => void): { stop(): void } {
    const key = this.keys(e)[2]
    const timer = setInterval(() => {
      this.redis.mqfnOrderedRenew(key, token, this.lockMs).then((held) => held === 1 || onLost(), () => {})
    }, Math.max(100, Math.floor(this.lockMs / 2)))
    return { stop: () => clearInterval(timer) }
  }
}

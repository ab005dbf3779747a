import { Redis, type RedisOptions } from 'ioredis'
import { errorMessage, mqfnError } from './errors.ts'

/*
 * BullMQ needs `maxRetriesPerRequest: null` on the connections it blocks on; we use
 * it everywhere, so a Redis outage makes commands wait for the reconnect instead of
 * failing: acknowledgements wait, nothing acknowledged is dropped.
 */
export function createRedis(url: string, name: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    connectionName: name,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    ...extra,
  })
}

/** Fails fast with a message naming the URL when Redis cannot be reached at start. */
export async function assertRedisReachable(url: string, timeoutMs: number): Promise<void> {
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    enableOfflineQueue: false,
  })
  // ioredis rejects with "Connection is closed."; the socket error says why
  let cause: unknown
  probe.on('error', (err) => (cause ??= err))
  try {
    await probe.connect()
    await probe.ping()
  } catch (err) {
    throw mqfnError('MQFN_ERR_REDIS_UNREACHABLE', redactUrl(url), errorMessage(cause ?? err))
  } finally {
    probe.disconnect()
  }
}

/** Hides credentials when a URL is printed. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return url
  }
}

/**
 * Warns, loudly, about Redis settings that lose queued events: an eviction policy
 * other than noeviction drops BullMQ keys under memory pressure, and with neither AOF
 * nor RDB snapshots a Redis restart empties every queue. Managed Redis services may
 * refuse CONFIG; then nothing can be checked and that is said once.
 */
export async function checkRedisSettings(redis: Redis, log: { warn(obj: object, msg: string): void }): Promise<string[]> {
  const problems: string[] = []
  try {
    const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as [string, string]
    const [, aof] = (await redis.config('GET', 'appendonly')) as [string, string]
    const [, save] = (await redis.config('GET', 'save')) as [string, string]
    if (policy !== 'noeviction') {
      problems.push(`maxmemory-policy is "${policy}": under memory pressure Redis evicts queue keys and events are lost; set it to noeviction`)
    }
    if (aof !== 'yes' && (save ?? '').trim() === '') {
      problems.push('persistence is off (appendonly no, no save points): a Redis restart loses every queued event; turn on appendonly')
    }
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'cannot read Redis settings (CONFIG GET refused); make sure maxmemory-policy is noeviction and persistence is on')
    return problems
  }
  for (const p of problems) log.warn({ redis: 'settings' }, `REDIS SETTINGS: ${p}`)
  return problems
}

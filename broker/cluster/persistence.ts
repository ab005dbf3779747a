import type { AedesOptions } from 'aedes'
import aedesPersistenceRedis from 'aedes-persistence-redis'
import { memorySessions, redisSessions, type StoredSessions } from './stored-sessions.ts'
import mqemitterRedis from 'mqemitter-redis'
import type { Redis } from 'ioredis'
import type { Logger } from '../../common/logger.ts'
import { assertRedisReachable, checkRedisSettings, createRedis } from '../../common/redis.ts'
import { throttled } from '../../common/throttle.ts'
import { within } from '../../common/within.ts'
import type { BrokerConfig } from '../config.ts'

/*
 * What aedes keeps between packets: sessions, subscriptions, retained messages, QoS 1/2
 * in flight and offline queues (its "persistence"), and the emitter that carries every
 * message to the subscribers (its "mq"). `memory` keeps both in this process; `redis`
 * puts both in Redis, so several brokers share them and a restarted broker finds its
 * persistent sessions again (docs/cluster.md).
 *
 * Four connections of their own, apart from BullMQ's: the store, and mqemitter-redis'
 * publisher and subscriber (a subscribed connection can run nothing else).
 */

type AedesPersistence = NonNullable<AedesOptions['persistence']>
type AedesMq = NonNullable<AedesOptions['mq']>

export interface ClusterBackend {
  /** Options for `new Aedes()`: empty for `memory` (aedes' own in-memory defaults). */
  readonly options: Pick<AedesOptions, 'persistence' | 'mq'>
  /** Client ids with a stored session, kept beside aedes' persistence. */
  readonly sessions: StoredSessions
  /**
   * Call after `aedes.close()`, which closes the emitter but leaves the store open:
   * waits for the store's pending writes, then disconnects. Safe to call twice.
   */
  close(): Promise<void>
}

/** The key and channel names, so that two prefixes on one Redis never share a session. */
export function clusterNames(prefix: string): { keyPrefix: string; channelPrefix: string } {
  return {
    // ioredis prepends it to every key the store touches (lists hold unprefixed key names, read back through the same connection)
    keyPrefix: `${prefix}:aedes:`,
    // Pub/sub channels ignore both ioredis' keyPrefix and the database number, so the
    // emitter prefixes them itself. Its subscriptions are Redis glob patterns built from
    // MQTT filters: glob and MQTT wildcard characters in the prefix become `_`.
    channelPrefix: `${prefix.replace(/[^\w{}.-]/g, '_')}/aedes/`,
  }
}

export async function createClusterBackend(config: Readonly<BrokerConfig>, log: Logger): Promise<ClusterBackend> {
  if (config.persistence === 'memory') return { options: {}, sessions: memorySessions(), close: async () => {} }

  const url = config.persistenceRedisUrl ?? config.redisUrl
  if (url !== config.redisUrl) await assertRedisReachable(url, config.connectTimeoutMs)
  const names = clusterNames(config.prefix)
  const reportError = (what: string) => throttled(5000, (suppressed, err) => log.warn({ err: (err as Error).message, suppressed }, `${what}: redis connection error`))
  const name = (role: string) => `mqfn-broker:${config.brokerId}:${role}`

  const store = createRedis(url, name('sessions'), { keyPrefix: names.keyPrefix })
  store.on('error', reportError('sessions'))
  // BullMQ's connection is checked in broker.ts; a separate server for sessions needs its own warning
  if (url !== config.redisUrl) await checkRedisSettings(store, log)
  const persistence = aedesPersistenceRedis({ conn: store, maxSessionDelivery: config.persistenceMaxSessionDelivery }) as unknown as AedesPersistence

  const pubConn = createRedis(url, name('mq-pub'), { enableAutoPipelining: true })
  const subConn = createRedis(url, name('mq-sub'))
  const mq = new MQEmitterRedisPrefix(names.channelPrefix, {
    pubConn,
    subConn,
    // No limit: Redis pushes messages without backpressure, so a limit only queues them,
    // and mqemitter drains its queue recursively; a backlog of messages that complete at
    // once (no local subscriber) then overflowed the stack and killed the broker (measured
    // with 100 000 QoS 1 messages and a persistent subscriber that left).
    concurrency: 0,
    matchEmptyLevels: true, // [MQTT-4.7.1-3] `a/#` matches `a`, as aedes' own emitter does
  })
  // without a listener, an error event on this emitter throws and takes the broker down
  mq.state.on('error', reportError('mq'))
  boundClose(mq, [pubConn, subConn])

  let closing: Promise<void> | undefined
  const close = async () => {
    // one connection answers in order: once PING returns, the writes sent before it are done
    await within(5000, store.ping())
    await within(5000, (persistence as unknown as { destroy(): Promise<void> }).destroy())
    store.disconnect()
  }
  log.info({ persistence: 'redis', keyPrefix: names.keyPrefix, channelPrefix: names.channelPrefix }, 'sessions and messages go through Redis')
  return { options: { persistence, mq: mq as unknown as AedesMq }, sessions: redisSessions(store), close: () => (closing ??= close()) }
}

interface RedisEmitter {
  state: NodeJS.EventEmitter
  close(cb?: () => void): void
}

const MQEmitterRedisPrefix = (mqemitterRedis as unknown as {
  MQEmitterRedisPrefix: new (channelPrefix: string, opts: { pubConn: Redis; subConn: Redis; concurrency: number; matchEmptyLevels: boolean }) => RedisEmitter
}).MQEmitterRedisPrefix

/** mqemitter-redis closes with QUIT and waits for both connections to end; with Redis away that is never. */
function boundClose(mq: RedisEmitter, conns: readonly Redis[]): void {
  const close = mq.close.bind(mq)
  mq.close = (cb) => {
    const timer = setTimeout(() => conns.forEach((c) => c.disconnect()), 5000)
    close(() => {
      clearTimeout(timer)
      cb?.()
    })
  }
}

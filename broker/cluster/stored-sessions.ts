import type { Redis } from 'ioredis'

/**
 * Which client ids have a stored session, even one with no subscriptions and nothing
 * queued: "the existence of a Session, even if the rest of the Session state is
 * empty" is session state [MQTT-4.1.0], and a CONNACK must say so [MQTT-3.2.2-2].
 * aedes' persistence keeps no such record, only subscriptions and messages. In
 * memory for one broker, in Redis for a cluster (beside aedes' keys, so a session
 * made on one broker is present on another).
 */
export interface StoredSessions {
  has(clientId: string): boolean | Promise<boolean>
  /** The session outlives this connection (3.1.1 clean session 0, MQTT 5 session expiry > 0). */
  add(clientId: string): void
  /** Discarded: a clean session or clean start, or expired. */
  remove(clientId: string): void
}

export function memorySessions(): StoredSessions {
  const ids = new Set<string>()
  return { has: (id) => ids.has(id), add: (id) => void ids.add(id), remove: (id) => void ids.delete(id) }
}

/** One Redis set; `store` carries aedes' key prefix, so prefixes never share it. */
export function redisSessions(store: Redis): StoredSessions {
  const key = 'sessions'
  // a lost write only makes Session Present 0 for a session that exists: the client resubscribes
  const ignore = () => {}
  return {
    has: async (id) => (await store.sismember(key, id)) === 1,
    add: (id) => void store.sadd(key, id).catch(ignore),
    remove: (id) => void store.srem(key, id).catch(ignore),
  }
}

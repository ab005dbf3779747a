// aedes-persistence-redis ships no types; this is the part broker/cluster/persistence.ts uses.
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis'

  interface AedesPersistenceRedisOptions {
    /** A connection made by the caller; the store disconnects it on destroy(). */
    conn?: Redis
    /** Offline messages sent on CONNECT; the rest wait for the next connection. @defaultValue 1000 */
    maxSessionDelivery?: number
    /** Seconds an offline message is kept; 0: forever. */
    packetTTL?: (packet: object) => number
  }

  function aedesPersistenceRedis(opts?: AedesPersistenceRedisOptions): unknown
  export default aedesPersistenceRedis
}

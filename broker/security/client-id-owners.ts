import { randomBytes } from 'node:crypto'
import { finished } from 'node:stream'
import type { Client } from 'aedes'
import type { Redis } from 'ioredis'
import type { Logger } from '../../common/logger.ts'

/*
 * Who may connect with a client id, once authentication is on (issue 14 item 6):
 * - `owner` (default): the id belongs to the user whose session holds it; another
 *   user presenting it is refused before aedes registers the connection, so the
 *   running client is never taken over [MQTT-3.1.4-2 applies within one owner].
 *   The record lives in Redis (`<prefix>:client-owner:<id>`), shared by every
 *   broker of a cluster, and lasts as long as the session can: a clean session's
 *   record goes when its connection does, a persistent one's when the session
 *   expires (for 3.1.1 sessions after sessionExpirySeconds, aedes clamping their
 *   interval to it; never when that is 0).
 * - `username-prefix`: the id is `<username>:<suffix>`, the suffix holding no `:`,
 *   so the username is the id up to its last `:` and no record is needed.
 * - `any`: no check (anyone may take over any id; the behaviour before).
 */

export type ClientIdPolicy = 'owner' | 'username-prefix' | 'any'

export const USERNAME_SEPARATOR = ':'

/** Never-expiring session interval, as aedes sets it for 3.1.1 persistent sessions (lib/constants.js). */
const SESSION_NEVER_EXPIRES = 0xffffffff
/** A connected client's record expires this long after its last renewal: a crashed broker's claims lapse. */
const LEASE_MS = 5 * 60_000
const RENEW_MS = 60_000
/** A CONNECT waits this long for the owner record before it is refused with CONNACK 3. */
const REDIS_WAIT_MS = 5000

// KEYS[1] the record; ARGV username, connection token, ms to live (0: no expiry).
// Returns the other owner's name, or nil when the id is now this user's.
const CLAIM = `
local owner = redis.call('HGET', KEYS[1], 'user')
if owner and owner ~= ARGV[1] then return owner end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'conn', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) else redis.call('PERSIST', KEYS[1]) end
return false`

// KEYS[1] the record; ARGV connection token, ms to live after it (0: delete, -1: keep).
// Only the connection that made the claim gives it up: after a takeover by the same
// user the old connection's close must not free the id of the new one.
const RELEASE = `
if redis.call('HGET', KEYS[1], 'conn') ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[2])
if ttl == 0 then redis.call('DEL', KEYS[1]) elseif ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`

type OwnerCommands = Redis & {
  mqfnClaimClientId(key: string, username: string, conn: string, ttlMs: number): Promise<string | null>
  mqfnReleaseClientId(key: string, conn: string, ttlMs: number): Promise<number>
}

interface Claim {
  key: string
  username: string
  conn: string
  /** Ms to live while connected (0: no expiry) and once the connection is gone (0 delete, -1 keep). */
  whileConnected: number
  after: number
}

export interface ClientIdOwners {
  /** null when `username` may connect as `client.id`, else why not (for the CONNACK's error). */
  claim(client: Client, username: string): Promise<string | null>
  close(): Promise<void>
}

/** How long a record lives for this client's session: while connected, and after. */
function lifetimes(client: Client): { whileConnected: number; after: number } {
  const interval = (client as Client & { sessionExpiryInterval?: number }).sessionExpiryInterval ?? (client.clean ? 0 : SESSION_NEVER_EXPIRES)
  if (interval === 0) return { whileConnected: LEASE_MS, after: 0 }
  if (interval >= SESSION_NEVER_EXPIRES) return { whileConnected: 0, after: -1 }
  return { whileConnected: LEASE_MS + interval * 1000, after: interval * 1000 + RENEW_MS }
}

function shown(id: string): string {
  return JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}…` : id)
}

export function usernamePrefixOwners(): ClientIdOwners {
  return {
    claim: async (client, username) => {
      const cut = client.id.lastIndexOf(USERNAME_SEPARATOR)
      if (cut > 0 && cut < client.id.length - 1 && client.id.slice(0, cut) === username) return null
      return `client id ${shown(client.id)} is not "${username}${USERNAME_SEPARATOR}<suffix>" (clientIdPolicy username-prefix)`
    },
    close: async () => {},
  }
}

export function redisOwners(redis: Redis, prefix: string, log: Logger): ClientIdOwners {
  const commands = redis as OwnerCommands
  redis.defineCommand('mqfnClaimClientId', { numberOfKeys: 1, lua: CLAIM })
  redis.defineCommand('mqfnReleaseClientId', { numberOfKeys: 1, lua: RELEASE })
  const held = new Map<Client, Claim>()

  const renew = setInterval(() => {
    for (const c of held.values()) {
      if (c.whileConnected === 0) continue
      commands.mqfnClaimClientId(c.key, c.username, c.conn, c.whileConnected).then(
        (other) => { if (other !== null) log.warn({ key: c.key, username: c.username, owner: other }, 'a connected client id was claimed by another user after its record lapsed') },
        (err: unknown) => log.warn({ err, key: c.key }, 'client id owner record not renewed'),
      )
    }
  }, RENEW_MS).unref()

  const release = (client: Client): void => {
    const c = held.get(client)
    if (!c) return
    held.delete(client)
    commands.mqfnReleaseClientId(c.key, c.conn, c.after).catch((err: unknown) => log.warn({ err, key: c.key }, 'client id owner record not released; it lapses with its expiry'))
  }

  return {
    async claim(client, username) {
      const key = `${prefix}:client-owner:${client.id}`
      const claim: Claim = { key, username, conn: randomBytes(8).toString('hex'), ...lifetimes(client) }
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${REDIS_WAIT_MS} ms`)), REDIS_WAIT_MS)
      })
      // a rejection refuses the CONNECT with CONNACK 3 (server unavailable)
      const other = await Promise.race([commands.mqfnClaimClientId(key, username, claim.conn, claim.whileConnected), timeout]).finally(() => clearTimeout(timer))
      if (other !== null) {
        log.info({ clientId: shown(client.id), username, owner: other }, 'client id belongs to another user; CONNECT refused')
        return `client id ${shown(client.id)} belongs to another user`
      }
      held.set(client, claim)
      // every way a connection ends closes its stream, the takeover's included
      finished(client.conn as NodeJS.ReadableStream, () => release(client))
      return null
    },
    async close() {
      clearInterval(renew)
      for (const client of [...held.keys()]) release(client)
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect())
      else redis.disconnect()
    },
  }
}

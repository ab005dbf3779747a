import type { Client } from 'aedes'
import { isMqfnError, mqfnError, type MqfnError } from '../../common/errors.ts'
import { createRedis } from '../../common/redis.ts'
import { throttled } from '../../common/throttle.ts'
import type { Logger } from '../../common/logger.ts'
import type { BrokerConfig } from '../config.ts'
import { aclAllows, aclAllowsNamed, isSysFilter, parseAcl, grantsAllow, type Acl, type Action, type Principal, type TopicGrants } from './acl.ts'
import { AuthFailures } from './auth-failures.ts'
import { redisOwners, usernamePrefixOwners, type ClientIdOwners } from './client-id-owners.ts'
import { createJwtVerifier, looksLikeJwt } from './jwt.ts'
import { DUMMY_HASH, verifyPassword } from './password-hash.ts'
import { peerCertificateOf, remoteAddressOf } from './peer.ts'
import { parseUsers, type Users } from './users-file.ts'
import { watchStructuredFile, type WatchedFile } from './watched-file.ts'

export type SecuritySettings = Pick<
  BrokerConfig,
  | 'auth' | 'usersFile' | 'jwtSecret' | 'jwtJwks' | 'jwtIssuer' | 'jwtAudience' | 'jwtUsernameClaim' | 'jwtTopicsClaim'
  | 'authFailureLimit' | 'authFailureWindowMs' | 'aclFile' | 'tlsCnAsUsername' | 'clientIdPolicy' | 'redisUrl' | 'prefix' | 'brokerId'
>

/** A refused CONNECT: `returnCode` goes into the CONNACK [MQTT-3.2.2.3]. */
export type Refusal = MqfnError & { returnCode: 4 | 5 }

export type AuthResult = { ok: true; username?: string } | { ok: false; error: Refusal }

export interface Security {
  /** Names of the mechanisms in force, for the start-up log. */
  readonly mechanisms: readonly string[]
  authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<AuthResult>
  /** null when allowed, else why not (never throws). `client` is null for wills aedes publishes late. */
  authorizePublish(client: Client | null, topic: string): MqfnError | null
  authorizeSubscribe(client: Client, filter: string): MqfnError | null
  /** Set only when rules or token grants exist: re-checks each delivery, so a reloaded ACL applies to existing subscriptions too. */
  readonly authorizeForward?: (client: Client, topic: string) => boolean
  close(): Promise<void>
}

interface Identity {
  username?: string | undefined
  grants?: TopicGrants | undefined
  /** Publish and forwarding decisions by topic, valid for one version of the ACL. */
  decided?: { acl: Acl | undefined; publish: Map<string, boolean>; subscribe: Map<string, boolean> }
}

/** Topics whose decision is kept per client and action; past it the cache starts over. */
const DECISION_CACHE_TOPICS = 1000

function refusal(returnCode: 4 | 5, what: string): Refusal {
  return Object.assign(mqfnError('MQFN_ERR_NOT_AUTHORIZED', what), { returnCode })
}


function clientIdOwners(settings: SecuritySettings, log: Logger): ClientIdOwners | undefined {
  if (settings.clientIdPolicy === 'username-prefix') return usernamePrefixOwners()
  if (settings.clientIdPolicy === 'any') return undefined
  // its own connection, made at the first CONNECT: start-up checks Redis after security
  const redis = createRedis(settings.redisUrl, `mqfn-broker-owners:${settings.brokerId}`, { lazyConnect: true })
  redis.on('error', throttled(5000, (suppressed, err) => log.warn({ err: (err as Error).message, suppressed }, 'redis connection error (client id owners)')))
  return redisOwners(redis, settings.prefix, log)
}

export async function createSecurity(settings: SecuritySettings, log: Logger): Promise<Security> {
  const users: WatchedFile<Users> | undefined = settings.usersFile
    ? watchStructuredFile(settings.usersFile, 'users file', (raw) => parseUsers(raw, settings.usersFile as string), log)
    : undefined
  const acl: WatchedFile<Acl> | undefined = settings.aclFile
    ? watchStructuredFile(settings.aclFile, 'ACL file', (raw) => parseAcl(raw, settings.aclFile as string), log)
    : undefined
  const verifyJwt = createJwtVerifier(settings)
  const mechanisms = [
    ...(users ? ['users file'] : []),
    ...(verifyJwt ? ['JWT'] : []),
    ...(settings.tlsCnAsUsername ? ['client certificate CN'] : []),
  ]
  const required = settings.auth === 'required'
  if (required && mechanisms.length === 0) {
    users?.close()
    acl?.close()
    throw mqfnError('MQFN_ERR_AUTH_NOT_CONFIGURED')
  }
  if (!required) log.warn('auth is "none": any client can connect without credentials (set MQFN_AUTH=required and a users file or JWT key for production)')
  const owners = required ? clientIdOwners(settings, log) : undefined

  const failures = new AuthFailures(settings.authFailureLimit, settings.authFailureWindowMs)
  const identities = new WeakMap<Client, Identity>()
  type Checked = { ok: true; identity: Identity } | { ok: false; error: Refusal }

  const checkCredentials = async (client: Client, username: string | undefined, password: Buffer | undefined): Promise<Checked> => {
    const cert = settings.tlsCnAsUsername ? peerCertificateOf(client.conn) : undefined
    if (cert?.verified) {
      if (username && username !== cert.cn) return { ok: false, error: refusal(4, 'the username does not match the client certificate') }
      return { ok: true, identity: { username: cert.cn } }
    }
    if (!required) return { ok: true, identity: { username: username || undefined } }
    if (password === undefined || password.length === 0) {
      return { ok: false, error: refusal(5, username ? 'no password given' : 'no credentials given') }
    }
    const secret = password.toString('utf8')
    if (verifyJwt && looksLikeJwt(secret)) {
      try {
        const token = await verifyJwt(secret)
        return { ok: true, identity: { username: token.username, grants: token.grants } }
      } catch (err) {
        if (isMqfnError(err, 'MQFN_ERR_TOKEN_REJECTED')) return { ok: false, error: refusal(4, err.message) }
        throw err
      }
    }
    if (users && username) {
      const entry = users.current().get(username)
      const matches = await verifyPassword(secret, entry?.password ?? DUMMY_HASH)
      if (entry && matches) return { ok: true, identity: { username } }
    } else if (users) {
      await verifyPassword(secret, DUMMY_HASH)
    }
    return { ok: false, error: refusal(4, 'bad username or password') }
  }

  const allowed = (client: Client, action: Action, topic: string, isFilter: boolean): boolean => {
    const identity = identities.get(client)
    if (required && action === 'subscribe' && isSysFilter(topic)) return sysAllowed(client, identity, topic, isFilter)
    // no rules and no token grants: nothing to check (the usual case, on every publish)
    if (!acl && !identity?.grants) return true
    const who: Principal = { clientId: client.id, username: identity?.username }
    if (identity?.grants && !grantsAllow(identity.grants, action, topic, who, isFilter)) return false
    return acl ? aclAllows(acl.current(), action, topic, who, isFilter) : true
  }

  /** `$SYS/` with authentication on: only a user an ACL rule names (aclAllowsNamed). */
  const sysAllowed = (client: Client, identity: Identity | undefined, topic: string, isFilter: boolean): boolean => {
    if (!acl) return false
    const who: Principal = { clientId: client.id, username: identity?.username }
    if (identity?.grants && !grantsAllow(identity.grants, 'subscribe', topic, who, isFilter)) return false
    return aclAllowsNamed(acl.current(), 'subscribe', topic, who, isFilter)
  }

  /*
   * A topic (not a filter) decided once per client, action and ACL version: rules with
   * %u/%c are expanded and matched per check, and publishes and forwards repeat the
   * same few topics. A reload makes acl.current() a new object, which empties the cache.
   */
  const allowedTopic = (client: Client, action: 'publish' | 'subscribe', topic: string): boolean => {
    const identity = identities.get(client)
    if (!identity || (!acl && !identity.grants)) return allowed(client, action, topic, false)
    const current = acl?.current()
    if (!identity.decided || identity.decided.acl !== current) identity.decided = { acl: current, publish: new Map(), subscribe: new Map() }
    const byTopic = identity.decided[action]
    let ok = byTopic.get(topic)
    if (ok === undefined) {
      if (byTopic.size >= DECISION_CACHE_TOPICS) byTopic.clear()
      ok = allowed(client, action, topic, false)
      byTopic.set(topic, ok)
    }
    return ok
  }

  /** Why `client` may not publish to `topic`, or null. */
  const publishRefused = (client: Client | null, topic: string): string | null => {
    if (topic.startsWith('$SYS/') || topic === '$SYS') return `publish to "${topic}": $SYS/ is reserved for the broker`
    if (client && !allowedTopic(client, 'publish', topic)) return `publish to "${topic}"`
    return null
  }

  const authorizePublish = (client: Client | null, topic: string): MqfnError | null => {
    const why = publishRefused(client, topic)
    return why === null ? null : mqfnError('MQFN_ERR_NOT_AUTHORIZED', why)
  }

  return {
    mechanisms,
    async authenticate(client, username, password) {
      const address = remoteAddressOf(client.conn, client.req)
      if (failures.blocked(address)) {
        return { ok: false, error: refusal(5, `too many failed logins from ${address}; retry after ${Math.round(settings.authFailureWindowMs / 1000)} s`) }
      }
      const result = await checkCredentials(client, username, password)
      if (!result.ok) {
        failures.record(address)
        return result
      }
      identities.set(client, result.identity)
      const will = (client as Client & { _will?: { topic?: string } | null })._will
      const willRefused = will?.topic !== undefined ? publishRefused(client, will.topic) : null
      if (willRefused !== null) return { ok: false, error: refusal(5, `will ${willRefused}`) }
      const name = result.identity.username
      // last: a claim is only made for a CONNECT that is otherwise accepted
      const taken = owners && name !== undefined ? await owners.claim(client, name) : null
      if (taken !== null) return { ok: false, error: refusal(5, taken) }
      return name !== undefined ? { ok: true, username: name } : { ok: true }
    },
    authorizePublish,
    authorizeSubscribe(client, filter) {
      return allowed(client, 'subscribe', filter, true) ? null : mqfnError('MQFN_ERR_NOT_AUTHORIZED', `subscribe to "${filter}"`)
    },
    ...(acl || verifyJwt
      ? {
          authorizeForward: (client: Client, topic: string): boolean => allowedTopic(client, 'subscribe', topic),
        }
      : {}),
    async close() {
      users?.close()
      acl?.close()
      failures.close()
      await owners?.close()
    },
  }
}


import type { Client } from 'aedes'
import { mqfnError, type MqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { BrokerConfig } from '../config.ts'
import { aclAllows, parseAcl, grantsAllow, type Acl, type Action, type Principal, type TopicGrants } from './acl.ts'
import { AuthFailures } from './auth-failures.ts'
import { createJwtVerifier, looksLikeJwt, TokenRejected } from './jwt.ts'
import { hashPassword, verifyPassword } from './password-hash.ts'
import { peerCertificateOf } from './peer.ts'
import { parseUsers, type Users } from './users-file.ts'
import { watchStructuredFile, type WatchedFile } from './watched-file.ts'

export type SecuritySettings = Pick<
  BrokerConfig,
  | 'auth' | 'usersFile' | 'jwtSecret' | 'jwtJwks' | 'jwtIssuer' | 'jwtAudience' | 'jwtUsernameClaim' | 'jwtTopicsClaim'
  | 'authFailureLimit' | 'authFailureWindowMs' | 'aclFile' | 'tlsCnAsUsername'
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
  close(): void
}

interface Identity {
  username?: string | undefined
  grants?: TopicGrants | undefined
  /** Forwarding decisions by topic, valid for one version of the ACL. */
  forwards?: { acl: Acl | undefined; byTopic: Map<string, boolean> }
}

const FORWARD_CACHE_TOPICS = 1000

function refusal(returnCode: 4 | 5, what: string): Refusal {
  return Object.assign(mqfnError('MQFN_ERR_NOT_AUTHORIZED', what), { returnCode })
}

function remoteAddressOf(client: Client): string | undefined {
  const conn = client.conn as { remoteAddress?: string } | undefined
  const req = client.req as { socket?: { remoteAddress?: string } } | undefined
  return conn?.remoteAddress ?? req?.socket?.remoteAddress
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

  const failures = new AuthFailures(settings.authFailureLimit, settings.authFailureWindowMs)
  const identities = new WeakMap<Client, Identity>()
  // spent on unknown users too, so response time does not reveal which names exist
  const dummyHash = await hashPassword('mqfn-timing-equaliser')

  const principal = (client: Client): Principal => ({ clientId: client.id, username: identities.get(client)?.username })

  const checkCredentials = async (client: Client, username: string | undefined, password: Buffer | undefined): Promise<AuthResult> => {
    const cert = settings.tlsCnAsUsername ? peerCertificateOf(client.conn) : undefined
    if (cert?.verified) {
      if (username && username !== cert.cn) return { ok: false, error: refusal(4, 'the username does not match the client certificate') }
      return { ok: true, username: cert.cn }
    }
    if (!required) return { ok: true, ...(username ? { username } : {}) }
    if (password === undefined || password.length === 0) {
      return { ok: false, error: refusal(5, username ? 'no password given' : 'no credentials given') }
    }
    const secret = password.toString('utf8')
    if (verifyJwt && looksLikeJwt(secret)) {
      try {
        const token = await verifyJwt(secret)
        identities.set(client, { username: token.username, grants: token.grants })
        return { ok: true, username: token.username }
      } catch (err) {
        if (err instanceof TokenRejected) return { ok: false, error: refusal(4, err.message) }
        throw err
      }
    }
    if (users && username) {
      const entry = users.current().get(username)
      const matches = await verifyPassword(secret, entry?.password ?? dummyHash)
      if (entry && matches) return { ok: true, username }
    } else if (users) {
      await verifyPassword(secret, dummyHash)
    }
    return { ok: false, error: refusal(4, 'bad username or password') }
  }

  const allowed = (client: Client, action: Action, topic: string, isFilter: boolean): boolean => {
    const who = principal(client)
    const grants = identities.get(client)?.grants
    if (grants && !grantsAllow(grants, action, topic, who, isFilter)) return false
    return acl ? aclAllows(acl.current(), action, topic, who, isFilter) : true
  }

  const authorizePublish = (client: Client | null, topic: string): MqfnError | null => {
    if (topic.startsWith('$SYS/') || topic === '$SYS') return mqfnError('MQFN_ERR_NOT_AUTHORIZED', `publish to "${topic}": $SYS/ is reserved for the broker`)
    if (client && !allowed(client, 'publish', topic, false)) return mqfnError('MQFN_ERR_NOT_AUTHORIZED', `publish to "${topic}"`)
    return null
  }

  return {
    mechanisms,
    async authenticate(client, username, password) {
      const address = remoteAddressOf(client)
      if (failures.blocked(address)) {
        return { ok: false, error: refusal(5, `too many failed logins from ${address}; retry after ${Math.round(settings.authFailureWindowMs / 1000)} s`) }
      }
      const result = await checkCredentials(client, username, password)
      if (!result.ok) {
        failures.record(address)
        return result
      }
      const identity = identities.get(client) ?? {}
      identity.username = result.username
      identities.set(client, identity)
      const will = (client as Client & { _will?: { topic?: string } | null })._will
      if (will?.topic !== undefined) {
        const denied = authorizePublish(client, will.topic)
        if (denied) return { ok: false, error: refusal(5, `will ${denied.message.replace(/^not authorized: /, '')}`) }
      }
      return result
    },
    authorizePublish,
    authorizeSubscribe(client, filter) {
      return allowed(client, 'subscribe', filter, true) ? null : mqfnError('MQFN_ERR_NOT_AUTHORIZED', `subscribe to "${filter}"`)
    },
    ...(acl || verifyJwt
      ? {
          authorizeForward(client: Client, topic: string): boolean {
            const identity = identities.get(client)
            if (!identity) return allowed(client, 'subscribe', topic, false)
            const current = acl?.current()
            if (!identity.forwards || identity.forwards.acl !== current || identity.forwards.byTopic.size >= FORWARD_CACHE_TOPICS) {
              identity.forwards = { acl: current, byTopic: new Map() }
            }
            let ok = identity.forwards.byTopic.get(topic)
            if (ok === undefined) {
              ok = allowed(client, 'subscribe', topic, false)
              identity.forwards.byTopic.set(topic, ok)
            }
            return ok
          },
        }
      : {}),
    close() {
      users?.close()
      acl?.close()
      failures.close()
    },
  }
}


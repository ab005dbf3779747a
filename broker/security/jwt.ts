import { readFileSync } from 'node:fs'
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import { isMqfnError, mqfnError } from '../../common/errors.ts'
import { validateTopicFilter } from '../../common/topic.ts'
import type { TopicGrants } from './acl.ts'

export interface JwtSettings {
  jwtSecret?: string | undefined
  jwtJwks?: string | undefined
  jwtIssuer?: string | undefined
  jwtAudience?: string | undefined
  jwtUsernameClaim: string
  jwtTopicsClaim: string
}

export interface JwtIdentity {
  username: string
  /** The topics the token allows, when it says. */
  grants?: TopicGrants
}

export type JwtVerifier = (token: string) => Promise<JwtIdentity>

/** A refused token (MQFN_ERR_TOKEN_REJECTED): the message names what is wrong with it, never its content. */
const rejected = (why: string) => mqfnError('MQFN_ERR_TOKEN_REJECTED', why)

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

export function looksLikeJwt(password: string): boolean {
  return password.length > 20 && JWT_SHAPE.test(password)
}

function isLoopbackHttp(url: URL): boolean {
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)
}

function keySource(jwks: string): JWTVerifyGetKey {
  if (/^https?:\/\//.test(jwks)) {
    const url = new URL(jwks)
    if (url.protocol !== 'https:' && !isLoopbackHttp(url)) {
      throw mqfnError('MQFN_ERR_CONFIG', `jwtJwks (env MQFN_JWT_JWKS): keys must come over https, got ${url.origin}`)
    }
    return createRemoteJWKSet(url, { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(jwks, 'utf8'))
  } catch (err) {
    throw mqfnError('MQFN_ERR_CONFIG', `jwtJwks (env MQFN_JWT_JWKS): cannot read the JWKS file ${jwks}: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as { keys?: unknown }).keys)) {
    throw mqfnError('MQFN_ERR_CONFIG', `jwtJwks (env MQFN_JWT_JWKS): ${jwks} is not a JWKS ({"keys": [...]})`)
  }
  return createLocalJWKSet(parsed as Parameters<typeof createLocalJWKSet>[0])
}

function filterList(value: unknown, claim: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw rejected(`claim "${claim}" must be a list of topic filters`)
  }
  for (const filter of value) {
    const problem = validateTopicFilter(filter)
    if (problem) throw rejected(`claim "${claim}": ${problem}`)
  }
  return value
}

function grantsFrom(payload: JWTPayload, claim: string): TopicGrants | undefined {
  const value = payload[claim]
  if (value === undefined) return undefined
  if (Array.isArray(value)) {
    const both = filterList(value, claim)
    return { publish: both, subscribe: both }
  }
  if (typeof value === 'object' && value !== null) {
    const { publish = [], subscribe = [] } = value as { publish?: unknown; subscribe?: unknown }
    return { publish: filterList(publish, `${claim}.publish`), subscribe: filterList(subscribe, `${claim}.subscribe`) }
  }
  throw rejected(`claim "${claim}" must be a list of topic filters or {publish, subscribe}`)
}

/** Null when no JWT mechanism is configured. Tokens must carry `exp`. */
export function createJwtVerifier(s: JwtSettings): JwtVerifier | null {
  if (!s.jwtSecret && !s.jwtJwks) return null
  const secret = s.jwtSecret ? new TextEncoder().encode(s.jwtSecret) : undefined
  const keys = s.jwtJwks ? keySource(s.jwtJwks) : undefined
  const base = {
    requiredClaims: ['exp'],
    ...(s.jwtIssuer ? { issuer: s.jwtIssuer } : {}),
    ...(s.jwtAudience ? { audience: s.jwtAudience } : {}),
  }
  return async (token) => {
    let payload: JWTPayload
    try {
      const header = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString('utf8')) as { alg?: unknown }
      if (header.alg === 'HS256' && secret) payload = (await jwtVerify(token, secret, { ...base, algorithms: ['HS256'] })).payload
      else if (keys) payload = (await jwtVerify(token, keys, { ...base, algorithms: ['RS256', 'ES256'] })).payload
      else throw rejected(`token algorithm ${JSON.stringify(header.alg)} is not accepted`)
    } catch (err) {
      if (isMqfnError(err, 'MQFN_ERR_TOKEN_REJECTED')) throw err
      if (err instanceof joseErrors.JWTExpired) throw rejected('token expired')
      if (err instanceof joseErrors.JOSEError) throw rejected(`token rejected: ${err.message}`)
      throw rejected('token is malformed')
    }
    const username = payload[s.jwtUsernameClaim]
    if (typeof username !== 'string' || username.length === 0) {
      throw rejected(`token has no "${s.jwtUsernameClaim}" claim naming the user`)
    }
    const grants = grantsFrom(payload, s.jwtTopicsClaim)
    return grants ? { username, grants } : { username }
  }
}

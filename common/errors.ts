/*
 * One registry of coded errors (fastify's FST_ERR_* pattern). Errors cross process
 * boundaries (BullMQ job failures, logs), so recognise them by `code`, not instanceof.
 * Every code is documented in docs/errors.md; a test keeps the two in step.
 */

const messages = {
  MQFN_ERR_CONFIG: (detail: string) => `Invalid configuration: ${detail}`,
  MQFN_ERR_CONFIG_FILE: (path: string, detail: string) => `Cannot read config file ${path}: ${detail}`,
  MQFN_ERR_REDIS_UNREACHABLE: (url: string, detail: string) =>
    `Redis is unreachable at ${url} (set REDIS_URL): ${detail}`,
  MQFN_ERR_MONGO_UNREACHABLE: (url: string, detail: string) =>
    `MongoDB is unreachable at ${url} (set MONGO_URL): ${detail}`,
  MQFN_ERR_LISTEN: (what: string, detail: string) => `Cannot listen for ${what}: ${detail}`,
  MQFN_ERR_TLS_CONFIG: (detail: string) => `TLS settings: ${detail}`,
  MQFN_ERR_TLS_FILE: (setting: string, path: string, detail: string) => `${setting} ${path}: ${detail}`,
  MQFN_ERR_HANDLER_UNKNOWN_EVENT: (path: string, name: string, valid: string) =>
    `${path}: "${name}" is not an event name. Valid names: ${valid}`,
  MQFN_ERR_HANDLER_DUPLICATE: (name: string, paths: string) =>
    `Handler "${name}" is defined more than once: ${paths}. Keep one file per handler name`,
  MQFN_ERR_HANDLER_BAD_NAME: (path: string, detail: string) => `${path}: ${detail}`,
  MQFN_ERR_HANDLER_COMPILE: (path: string, detail: string) => `${path}: does not compile: ${detail}`,
  MQFN_ERR_HANDLER_LOAD: (path: string, detail: string) => `${path}: failed while loading: ${detail}`,
  MQFN_ERR_HANDLER_EXPORT: (path: string, detail: string) => `${path}: ${detail}`,
  MQFN_ERR_HANDLER_CONFIG: (path: string, detail: string) => `${path}: invalid config export: ${detail}`,
  MQFN_ERR_HANDLER_TYPE: (line: string) => `type error: ${line}`,
  MQFN_ERR_HANDLER_TIMEOUT: (name: string, ms: number) => `Handler "${name}" timeout: still running after ${ms} ms`,
  MQFN_ERR_HANDLER_OUT_OF_MEMORY: (name: string, mb: number) =>
    `Handler "${name}" out-of-memory: its thread passed its heap cap of ${mb} MB (memoryMb) and was stopped`,
  MQFN_ERR_HANDLER_CRASHED: (name: string, detail: string) => `Handler "${name}" crashed: ${detail}`,
  MQFN_ERR_HANDLER_NOT_LOADED: (name: string) => `handler "${name}" is not loaded in this worker`,
  MQFN_ERR_PAYLOAD_INVALID: (problem: string) => `payload ${problem}`,
  MQFN_ERR_EVENT_INVALID: (detail: string) => detail,
  MQFN_ERR_STORE_OUTAGE: () => 'MongoDB is unreachable; the batch will be retried',
  MQFN_ERR_PREBUILT_MANIFEST: (path: string, detail: string) =>
    `${path}: not a handler build written by mqfn build: ${detail}. Run mqfn build again`,
  MQFN_ERR_CAPTURE_THREAD: (detail: string) => `event capture thread: ${detail}`,
  MQFN_ERR_PUBLISH: (detail: string) => `ctx.publish: ${detail}`,
  MQFN_ERR_REPLY: (detail: string) => `ctx.reply: ${detail}`,
  MQFN_ERR_DLQ_NOT_FOUND: (ids: readonly string[]) =>
    `No dead letter with id ${ids.map((id) => JSON.stringify(id)).join(', ')} (mqfn dlq list shows the ids)`,
  MQFN_ERR_AUTH_NOT_CONFIGURED: () =>
    'auth is "required" but no way to authenticate is configured: set MQFN_USERS_FILE, MQFN_JWT_SECRET or MQFN_JWT_JWKS, or MQFN_TLS_CN_AS_USERNAME with client certificates; or MQFN_AUTH=none to let anyone connect',
  MQFN_ERR_USERS_FILE: (path: string, detail: string) => `Users file ${path}: ${detail}`,
  MQFN_ERR_ACL_FILE: (path: string, detail: string) => `ACL file ${path}: ${detail}`,
  MQFN_ERR_NOT_AUTHORIZED: (what: string) => `not authorized: ${what}`,
  MQFN_ERR_TOKEN_REJECTED: (detail: string) => detail,
  MQFN_ERR_LIMIT_EXCEEDED: (setting: string, detail: string) => `${setting} exceeded: ${detail}`,
  MQFN_ERR_CLIENT_ID: (detail: string) => `client id refused: ${detail}`,
  MQFN_ERR_PROTOCOL: (detail: string) => `protocol violation: ${detail}`,
  MQFN_ERR_USAGE: (detail: string) => detail,
} as const

export type ErrorCode = keyof typeof messages
export const ERROR_CODES = Object.keys(messages) as ErrorCode[]

export class MqfnError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'MqfnError'
    this.code = code
  }
}

type Args<C extends ErrorCode> = Parameters<(typeof messages)[C]>

export function mqfnError<C extends ErrorCode>(code: C, ...args: Args<C>): MqfnError {
  const format = messages[code] as (...a: Args<C>) => string
  return new MqfnError(code, format(...args))
}

export function isMqfnError(err: unknown, code?: ErrorCode): err is MqfnError {
  if (typeof err !== 'object' || err === null) return false
  const e = err as { name?: unknown; code?: unknown }
  return e.name === 'MqfnError' && (code === undefined || e.code === code)
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

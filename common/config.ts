import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { mqfnError } from './errors.ts'

/*
 * One zod schema per process, read once from an optional JSON file and the
 * environment (the environment wins), then frozen. Keys are camelCase in the file;
 * each has one environment variable, derived from the key by one rule (envNames), so
 * the schema is the only list of settings. A bad value fails start-up with every bad
 * key named, with its variable and what was expected.
 */

export type EnvNames<T> = { readonly [K in keyof T]-?: string }

// the few variables whose names predate the rule, declared on their schemas
const envRegistry = z.registry<{ env: string }>()

/** Gives a setting an environment variable other than the rule's (REDIS_URL, not MQFN_REDIS_URL). */
export function withEnv<T extends z.ZodType>(schema: T, name: string): T {
  envRegistry.add(schema, { env: name })
  return schema
}

/** `mqttPort` → `MQFN_MQTT_PORT`; a schema given withEnv keeps its own name. */
export function envNames<S extends z.ZodObject>(schema: S): EnvNames<z.output<S>> {
  const names: Record<string, string> = {}
  for (const [key, field] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
    names[key] = envRegistry.get(field)?.env ?? `MQFN_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`
  }
  return names as EnvNames<z.output<S>>
}

export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback)
export const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback)
export const nonNegativeInt = (fallback: number) => z.coerce.number().int().nonnegative().default(fallback)
export const flag = (fallback: boolean) => z.union([z.boolean(), z.stringbool()]).default(fallback)
export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')

export interface LoadOptions {
  env?: NodeJS.ProcessEnv
  /** A JSON file with the same keys; MQFN_CONFIG names one when this is not given. */
  file?: string
  /** Values that win over both (used by tests and the CLI's flags). */
  overrides?: Record<string, unknown>
}

export function loadConfig<S extends z.ZodObject>(
  schema: S,
  envNames: EnvNames<z.output<S>>,
  options: LoadOptions = {},
): Readonly<z.output<S>> {
  const env = options.env ?? process.env
  const file = options.file ?? env.MQFN_CONFIG
  const input: Record<string, unknown> = file ? readConfigFile(file) : {}
  const known = new Set(Object.keys(envNames))
  for (const key of Object.keys(input)) {
    if (!known.has(key)) {
      throw mqfnError('MQFN_ERR_CONFIG', `unknown key "${key}" in ${file}; valid keys: ${[...known].join(', ')}`)
    }
  }
  for (const [key, name] of Object.entries(envNames) as [string, string][]) {
    const value = env[name]
    if (value !== undefined && value !== '') input[key] = value
  }
  Object.assign(input, options.overrides)
  const result = schema.safeParse(input)
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '')
      const name = (envNames as Record<string, string>)[key]
      const got = key in input ? ` (got ${JSON.stringify(input[key])})` : ''
      return `${key}${name ? ` (env ${name})` : ''}: ${issue.message}${got}`
    })
    throw mqfnError('MQFN_ERR_CONFIG', problems.join('; '))
  }
  return Object.freeze(result.data)
}

function readConfigFile(path: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw mqfnError('MQFN_ERR_CONFIG_FILE', path, err instanceof Error ? err.message : String(err))
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw mqfnError('MQFN_ERR_CONFIG_FILE', path, 'expected a JSON object')
  }
  return { ...(parsed as Record<string, unknown>) }
}

/** Redis URL check shared by both processes' schemas (`unwrap()` it for one without the default). */
export const redisUrl = withEnv(
  z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
  'REDIS_URL',
)

/** BullMQ key prefix; keep a {hash tag} in it for Redis Cluster. */
export const queuePrefix = z
  .string()
  .regex(/^[^:\s]+$/, 'expected a prefix without spaces or ":"')
  .default('{mqfn}')

/**
 * The admin HTTP server's settings (health, readiness, metrics; the worker's
 * dashboard): the same four keys in both processes, whose ports differ.
 */
export function adminSettings(defaultPort: number) {
  return {
    /** Interface of the admin HTTP server. @defaultValue `127.0.0.1` */
    adminHost: z.string().min(1).default('127.0.0.1'),
    /** Admin HTTP port (/healthz, /readyz, /metrics; the worker's dashboard); 0 picks a free port. @defaultValue broker 9090, worker 9091 */
    adminPort: port(defaultPort),
    /** Serve the admin HTTP endpoints. @defaultValue true */
    adminEnabled: flag(true),
    /** Bearer token (or the dashboard's `?token=`) for everything but /healthz and /readyz; without one those answer 401. */
    adminToken: z.string().min(16, 'expected at least 16 characters').optional(),
  }
}

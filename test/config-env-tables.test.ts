import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { BROKER_ENV, BrokerConfigSchema } from '../broker/config.ts'
import { loadConfig } from '../common/config.ts'
import { WORKER_ENV, WorkerConfigSchema } from '../runtime/config.ts'
import { ROOT } from './helpers/stack.ts'

/*
 * The zod schemas are the one list of settings; README.md and docs/*.md show them in
 * tables whose first column names environment variables. Every name a table shows must
 * exist (a `*` pattern must match one), every variable must be named exactly in some
 * table, and a default a table shows must be the schema's.
 */

const NAME = /^(MQFN_[A-Z0-9_*]+|REDIS_URL|MONGO_URL)$/
const ROLES = { broker: { schema: BrokerConfigSchema, env: BROKER_ENV }, worker: { schema: WorkerConfigSchema, env: WORKER_ENV } }

interface Setting { processes: Set<string>; defaults: Set<string> }

/** Every variable, the processes that read it and its defaults there (absent: none, or computed at start). */
function settings(): Map<string, Setting> {
  const all = new Map<string, Setting>()
  for (const [role, { schema, env }] of Object.entries(ROLES)) {
    const parsed = schema.parse({}) as Record<string, unknown>
    for (const [key, name] of Object.entries(env as Record<string, string>)) {
      const s = all.get(name) ?? { processes: new Set(), defaults: new Set() }
      s.processes.add(role)
      const value = parsed[key]
      // the broker id is `<hostname>-<pid>`, computed at start
      if (value !== undefined && key !== 'brokerId' && !Array.isArray(value) && typeof value !== 'object') s.defaults.add(String(value))
      all.set(name, s)
    }
  }
  return all
}

interface Row { file: string; names: string[]; process?: string; defaults: string[] }

const cells = (line: string) => line.slice(1, line.endsWith('|') ? -1 : undefined).split(' | ').map((c) => c.trim())
const ticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string)

/** Rows of the settings tables: environment variables in the first column. */
function envRows(file: string): Row[] {
  const rows: Row[] = []
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n')
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i]?.startsWith('|') || !/^\|[ -|]+$/.test(lines[i + 1] ?? '')) continue
    const header = cells(lines[i] as string)
    // settings tables start `| variable |` or `| setting |` (the limits' add their config key)
    if (!/^(variable|setting)\b/.test(header[0] ?? '')) continue
    const defaultAt = header.indexOf('default')
    const processAt = header.indexOf('process')
    for (let j = i + 2; lines[j]?.startsWith('|'); j++) {
      const row = cells(lines[j] as string)
      const names = ticked(row[0] ?? '').filter((t) => NAME.test(t))
      if (names.length === 0) continue
      rows.push({ file, names, defaults: defaultAt < 0 ? [] : ticked(row[defaultAt] ?? ''), ...(processAt < 0 ? {} : { process: row[processAt] }) })
    }
  }
  return rows
}

const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]

test('README and docs tables name exactly the variables the config schemas read, with their defaults and processes', () => {
  const known = settings()
  const rows = DOCS.flatMap(envRows)
  assert.ok(rows.some((r) => r.file === 'README.md') && rows.some((r) => r.file.startsWith('docs/')), 'found the tables')
  const named = new Set<string>()
  for (const row of rows) {
    for (const name of row.names) {
      if (name.includes('*')) {
        const pattern = new RegExp(`^${name.replace(/\*/g, '[A-Z0-9_]*')}$`)
        assert.ok([...known.keys()].some((k) => pattern.test(k)), `${row.file}: ${name} matches no setting`)
        continue
      }
      const setting = known.get(name)
      assert.ok(setting, `${row.file}: ${name} is not a setting (settings: ${[...known.keys()].join(', ')})`)
      named.add(name)
      if (row.process !== undefined) {
        const want = setting.processes.size === 2 ? 'both' : [...setting.processes][0]
        assert.equal(row.process, want, `${row.file}: ${name} is read by ${want}`)
      }
    }
    // a default is checked where the row shows one per variable: `1000` for one, `8080`, `/mqtt`, `true` for three
    const exact = row.names.filter((n) => !n.includes('*'))
    if (exact.length !== row.names.length) continue
    const shown = row.defaults.filter((d) => !NAME.test(d))
    if (exact.length === 1 && shown.length > 0) {
      const setting = known.get(exact[0] as string) as Setting
      if (setting.defaults.size > 0) assert.ok(setting.defaults.has(shown[0] as string), `${row.file}: ${exact[0]} default ${shown[0]}, the schema's ${[...setting.defaults].join(' / ')}`)
    } else if (row.defaults.length === exact.length) {
      exact.forEach((name, i) => {
        const setting = known.get(name) as Setting
        if (setting.defaults.size > 0) assert.ok(setting.defaults.has(row.defaults[i] as string), `${row.file}: ${name} default ${row.defaults[i]}, the schema's ${[...setting.defaults].join(' / ')}`)
      })
    }
  }
  assert.deepEqual([...known.keys()].filter((k) => !named.has(k)).sort(), [], 'every setting is named exactly in a README or docs table')
})

test('each key reads the variable the tables name: MQFN_ prefix and the key in capitals, except REDIS_URL, MONGO_URL and the retention', () => {
  assert.equal(BROKER_ENV.mqttPort, 'MQFN_MQTT_PORT')
  assert.equal(BROKER_ENV.tlsCnAsUsername, 'MQFN_TLS_CN_AS_USERNAME')
  assert.equal(BROKER_ENV.persistenceRedisUrl, 'MQFN_PERSISTENCE_REDIS_URL')
  assert.equal(BROKER_ENV.redisUrl, 'REDIS_URL')
  assert.deepEqual([WORKER_ENV.redisUrl, WORKER_ENV.mongoUrl, WORKER_ENV.retentionDays], ['REDIS_URL', 'MONGO_URL', 'MQFN_EVENT_LOG_RETENTION_DAYS'])
  // the admin block is one declaration: the same four variables in both processes, ports apart
  const admin = ['adminHost', 'adminPort', 'adminEnabled', 'adminToken'] as const
  assert.deepEqual(admin.map((k) => BROKER_ENV[k]), admin.map((k) => WORKER_ENV[k]))
  assert.deepEqual([BrokerConfigSchema.parse({}).adminPort, WorkerConfigSchema.parse({}).adminPort], [9090, 9091])
  // and loading reads them
  const config = loadConfig(WorkerConfigSchema, WORKER_ENV, { env: { MONGO_URL: 'mongodb://db:1/x', MQFN_EVENT_LOG_RETENTION_DAYS: '7', MQFN_ADMIN_PORT: '0' } })
  assert.deepEqual([config.mongoUrl, config.retentionDays, config.adminPort], ['mongodb://db:1/x', 7, 0])
  assert.throws(() => loadConfig(BrokerConfigSchema, BROKER_ENV, { env: { MQFN_ADMIN_TOKEN: 'short' } }), /adminToken \(env MQFN_ADMIN_TOKEN\): expected at least 16 characters/)
})

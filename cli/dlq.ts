import type { Db } from 'mongodb'
import { EVENT_TYPES, isEventType } from '../common/event-types.ts'
import { errorMessage, isMqfnError } from '../common/errors.ts'
import { assertRedisReachable, createRedis } from '../common/redis.ts'
import { loadWorkerConfig, type WorkerConfig } from '../runtime/config.ts'
import {
  decodePayload,
  getDeadLetter,
  isEmptyFilter,
  listDeadLetters,
  purgeDeadLetters,
  retryDeadLetters,
  retryQueues,
  type DeadLetterFilter,
  type DeadLetterSummary,
} from '../runtime/dlq.ts'
import { connectMongo, databaseName } from '../runtime/mongo.ts'
import type { DeadLetterDocument } from '../runtime/store/dead-letters.ts'

/*
 * `mqfn dlq list | show | retry | purge`: argument parsing and printing. The
 * operations are in runtime/dlq.ts. Exit status: 0 done, 1 operational error
 * (configuration, an unreachable server, an unknown id), 2 usage error.
 */

export const DLQ_USAGE = `usage: mqfn dlq <command> [options] [--config file.json]

commands:
  list              dead letters, newest first: id, event type, handler, when, attempts, last error
  show <id>         one dead letter: the event, its payload, every attempt's error and stack
  retry [<id>...]   re-enqueue to their handlers; the worker deletes each dead letter whose
                    handler then succeeds, and rewrites it with the new errors if it fails again
  purge [<id>...]   delete; needs ids or a filter, or --all

filters (list, retry, purge; ids and filters combine):
  --type <event>    event type, e.g. published
  --handler <name>  handler name, e.g. published/alerts
  --since <time>    dead at or after: an ISO date (2025-05-01, 2025-05-01T12:00:00Z) or a time ago (30m, 2h, 7d)
  --until <time>    dead at or before, same forms

options:
  --limit <n>       list: at most n lines (default 50)
  --json            list, show: JSON instead of text
  --attempts <n>    retry: attempts of each re-enqueued handler, with exponential backoff (default 1)
  --dry-run         retry, purge: count only, change nothing
  --all             purge: every dead letter

Redis and MongoDB are configured as for mqfn worker (REDIS_URL, MONGO_URL, MQFN_DATABASE, MQFN_PREFIX).
Exit status: 0 done, 1 operational error, 2 usage error.`

/** Delay before a re-enqueued handler's second attempt: the handlers' own default backoff. */
const RETRY_BACKOFF_MS = 1000

export class UsageError extends Error {
  override name = 'UsageError'
}

export type DlqCommand =
  | { kind: 'help' }
  | { kind: 'list'; filter: DeadLetterFilter; limit: number; json: boolean; configFile?: string }
  | { kind: 'show'; id: string; json: boolean; configFile?: string }
  | { kind: 'retry'; filter: DeadLetterFilter; attempts: number; dryRun: boolean; configFile?: string }
  | { kind: 'purge'; selection: DeadLetterFilter | 'all'; dryRun: boolean; configFile?: string }

const VALUE_FLAGS = ['--type', '--handler', '--since', '--until', '--limit', '--attempts', '--config'] as const
const BOOLEAN_FLAGS = ['--json', '--dry-run', '--all'] as const
type ValueFlag = (typeof VALUE_FLAGS)[number]
type BooleanFlag = (typeof BOOLEAN_FLAGS)[number]

const COMMANDS = ['list', 'show', 'retry', 'purge'] as const
type Command = (typeof COMMANDS)[number]

function isCommand(s: string | undefined): s is Command {
  return (COMMANDS as readonly (string | undefined)[]).includes(s)
}

const FILTERS: readonly ValueFlag[] = ['--type', '--handler', '--since', '--until']
const ALLOWED: Record<Command, readonly string[]> = {
  list: [...FILTERS, '--limit', '--json', '--config'],
  show: ['--json', '--config'],
  retry: [...FILTERS, '--attempts', '--dry-run', '--config'],
  purge: [...FILTERS, '--dry-run', '--all', '--config'],
}

interface RawArgs {
  positional: string[]
  values: Partial<Record<ValueFlag, string>>
  booleans: Set<BooleanFlag>
}

function isValueFlag(s: string): s is ValueFlag {
  return (VALUE_FLAGS as readonly string[]).includes(s)
}

function isBooleanFlag(s: string): s is BooleanFlag {
  return (BOOLEAN_FLAGS as readonly string[]).includes(s)
}

function tokenize(sub: Command, args: readonly string[]): RawArgs {
  const raw: RawArgs = { positional: [], values: {}, booleans: new Set() }
  const allowed = ALLOWED[sub]
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (arg === '--') {
      raw.positional.push(...args.slice(i + 1))
      break
    }
    if (!arg.startsWith('-') || arg === '-') {
      raw.positional.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg : arg.slice(0, eq)
    if (!allowed.includes(name)) throw new UsageError(`unknown option ${name}`)
    if (isBooleanFlag(name)) {
      if (eq !== -1) throw new UsageError(`${name} takes no value`)
      raw.booleans.add(name)
      continue
    }
    if (!isValueFlag(name)) throw new UsageError(`unknown option ${name}`)
    if (raw.values[name] !== undefined) throw new UsageError(`${name} is given twice`)
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1)
    if (value === undefined || value === '' || (eq === -1 && value.startsWith('--'))) throw new UsageError(`${name} needs a value`)
    raw.values[name] = value
  }
  return raw
}

function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`${flag}: expected a positive integer, got ${JSON.stringify(value)}`)
  return Number(value)
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/

/** An ISO date, or a duration back from `now`. */
export function parseTime(flag: string, value: string, now: Date): Date {
  const relative = /^(\d+)([smhdw])$/.exec(value)
  if (relative) return new Date(now.getTime() - Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS])
  const ms = ISO_DATE.test(value) ? Date.parse(value) : Number.NaN
  if (Number.isNaN(ms)) {
    throw new UsageError(`${flag}: expected an ISO date (2025-05-01, 2025-05-01T12:00:00Z) or a time ago (30s, 30m, 2h, 7d, 2w), got ${JSON.stringify(value)}`)
  }
  return new Date(ms)
}

function parseFilter(raw: RawArgs, now: Date): DeadLetterFilter {
  const filter: DeadLetterFilter = {}
  if (raw.positional.length > 0) filter.ids = raw.positional
  const type = raw.values['--type']
  if (type !== undefined) {
    if (!isEventType(type)) throw new UsageError(`--type: expected an event type (${EVENT_TYPES.join(', ')}), got ${JSON.stringify(type)}`)
    filter.type = type
  }
  const handler = raw.values['--handler']
  if (handler !== undefined) {
    const [event, name, ...more] = handler.split('/')
    if (!isEventType(event ?? '') || more.length > 0 || (name !== undefined && !/^[A-Za-z0-9_-]+$/.test(name))) {
      throw new UsageError(`--handler: expected a handler name (<event> or <event>/<name>, e.g. published/alerts), got ${JSON.stringify(handler)}`)
    }
    filter.handler = handler
  }
  const since = raw.values['--since']
  const until = raw.values['--until']
  if (since !== undefined) filter.since = parseTime('--since', since, now)
  if (until !== undefined) filter.until = parseTime('--until', until, now)
  if (filter.since && filter.until && filter.since > filter.until) {
    throw new UsageError(`--since (${filter.since.toISOString()}) is later than --until (${filter.until.toISOString()})`)
  }
  return filter
}

/** `args` are what follows `mqfn dlq`; `now` anchors relative times. */
export function parseDlqArgs(args: readonly string[], now: Date): DlqCommand {
  const [sub, ...rest] = args
  if (sub === undefined) throw new UsageError('missing command: list, show, retry or purge')
  if (sub === 'help' || sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) return { kind: 'help' }
  if (!isCommand(sub)) {
    throw new UsageError(`unknown command ${JSON.stringify(sub)}: expected list, show, retry or purge`)
  }
  const raw = tokenize(sub, rest)
  const configFile = raw.values['--config']
  const json = raw.booleans.has('--json')
  const dryRun = raw.booleans.has('--dry-run')
  switch (sub) {
    case 'list': {
      if (raw.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(raw.positional[0])} (list takes filters, not ids; dlq show <id> shows one)`)
      return { kind: 'list', filter: parseFilter(raw, now), limit: positiveInt('--limit', raw.values['--limit'], 50), json, configFile }
    }
    case 'show': {
      const [id, ...extra] = raw.positional
      if (id === undefined || extra.length > 0) throw new UsageError(`expected one id, got ${raw.positional.length}`)
      return { kind: 'show', id, json, configFile }
    }
    case 'retry':
      return { kind: 'retry', filter: parseFilter(raw, now), attempts: positiveInt('--attempts', raw.values['--attempts'], 1), dryRun, configFile }
    case 'purge': {
      const filter = parseFilter(raw, now)
      const all = raw.booleans.has('--all')
      if (all && !isEmptyFilter(filter)) throw new UsageError('--all cannot be combined with ids or filters')
      if (!all && isEmptyFilter(filter)) {
        throw new UsageError('give ids or a filter (--type, --handler, --since, --until), or --all to delete every dead letter')
      }
      return { kind: 'purge', selection: all ? 'all' : filter, dryRun, configFile }
    }
  }
}

function deadLetters(n: number): string {
  return `${n} dead letter${n === 1 ? '' : 's'}`
}

function firstLine(s: string): string {
  return s.split('\n', 1)[0] ?? ''
}

/** Aligned columns, the last one left ragged (it holds the error message). */
export function formatList(letters: readonly DeadLetterSummary[], total: number): string {
  if (total === 0) return 'no dead letters\n'
  const header = ['ID', 'TYPE', 'HANDLER', 'DEAD AT', 'ATTEMPTS', 'LAST ERROR']
  const rows = [
    header,
    ...letters.map((l) => [
      l.id,
      l.type,
      l.handler ?? '-',
      l.deadAt.toISOString(),
      String(l.attempts),
      l.lastError ? firstLine(`${l.lastError.name}: ${l.lastError.message}`) : '-',
    ]),
  ]
  const widths = header.map((_, c) => Math.max(...rows.map((r) => (r[c] as string).length)))
  const lines = rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] as number))).join('  '))
  if (letters.length < total) lines.push(`(${letters.length} of ${total} shown; --limit to see more)`)
  return `${lines.join('\n')}\n`
}

function indent(text: string, by: string): string {
  return text.split('\n').map((line) => by + line).join('\n')
}

export function formatShow(doc: DeadLetterDocument): string {
  const out = [
    `id        ${doc._id}`,
    `event id  ${doc.eventId}`,
    `type      ${doc.type}`,
    `handler   ${doc.handler ?? '- (the event failed validation)'}`,
    `dead at   ${doc.deadAt.toISOString()}`,
    `attempts  ${doc.errors.length}`,
    '',
    'event',
  ]
  if (typeof doc.event === 'object' && doc.event !== null && !Array.isArray(doc.event)) {
    for (const [key, value] of Object.entries(doc.event)) if (key !== 'payload') out.push(`  ${key}: ${JSON.stringify(value)}`)
  } else {
    out.push(`  ${JSON.stringify(doc.event)}`)
  }
  const payload = decodePayload(doc.event)
  if (payload) {
    out.push('', `payload (${payload.bytes} bytes, ${payload.encoding})`)
    if (payload.bytes > 0) out.push(indent(payload.text, '  '))
  }
  out.push('', 'errors')
  for (const e of doc.errors) {
    out.push(`  attempt ${e.attempt} at ${new Date(e.at).toISOString()}`)
    out.push(indent(e.stack ?? `${e.name}: ${e.message}`, '    '))
  }
  return `${out.join('\n')}\n`
}

function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  // flushed before the process exits, whatever the stream is (pipe, file, terminal)
  return new Promise((resolve) => stream.write(text, () => resolve()))
}

const print = (text: string) => write(process.stdout, text)

async function withMongo<T>(config: Readonly<WorkerConfig>, fn: (db: Db) => Promise<T>): Promise<T> {
  const mongo = await connectMongo(config, 'mqfn-dlq')
  try {
    return await fn(mongo.db(databaseName(config)))
  } finally {
    await mongo.close()
  }
}

async function retry(command: Extract<DlqCommand, { kind: 'retry' }>, config: Readonly<WorkerConfig>): Promise<void> {
  // Redis first, as the worker checks it: a dry run then also says whether a real run could enqueue
  await assertRedisReachable(config.redisUrl, config.connectTimeoutMs)
  const redis = createRedis(config.redisUrl, 'mqfn-dlq')
  redis.on('error', () => {})
  const queues = retryQueues(redis, config.prefix)
  try {
    const report = await withMongo(config, (db) =>
      retryDeadLetters(db, queues.enqueue, command.filter, { attempts: command.attempts, backoffMs: RETRY_BACKOFF_MS, dryRun: command.dryRun }))
    const lines = report.skipped.map((s) => `skipped ${s.id}: ${s.reason}`)
    const skipped = report.skipped.length > 0 ? `; skipped ${report.skipped.length}` : ''
    lines.push(`${command.dryRun ? 'would re-enqueue' : 're-enqueued'} ${deadLetters(report.enqueued)}${skipped}`)
    await print(`${lines.join('\n')}\n`)
  } finally {
    await queues.close()
    await redis.quit().catch(() => redis.disconnect())
  }
}

async function run(command: Exclude<DlqCommand, { kind: 'help' }>, config: Readonly<WorkerConfig>): Promise<void> {
  switch (command.kind) {
    case 'list': {
      const { letters, total } = await withMongo(config, (db) => listDeadLetters(db, command.filter, command.limit))
      return print(command.json ? `${JSON.stringify(letters, null, 2)}\n` : formatList(letters, total))
    }
    case 'show': {
      const doc = await withMongo(config, (db) => getDeadLetter(db, command.id))
      return print(command.json ? `${JSON.stringify({ ...doc, payload: decodePayload(doc.event) ?? null }, null, 2)}\n` : formatShow(doc))
    }
    case 'retry':
      return retry(command, config)
    case 'purge': {
      const n = await withMongo(config, (db) => purgeDeadLetters(db, command.selection, { dryRun: command.dryRun }))
      return print(`${command.dryRun ? 'would purge' : 'purged'} ${deadLetters(n)}\n`)
    }
  }
}

/** `mqfn dlq ...`; resolves to the exit status. */
export async function dlqMain(args: readonly string[]): Promise<number> {
  let command: DlqCommand
  try {
    command = parseDlqArgs(args, new Date())
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    const sub = isCommand(args[0]) ? ` ${args[0]}` : ''
    await write(process.stderr, `mqfn dlq${sub}: ${err.message}\nrun "mqfn dlq --help" for usage\n`)
    return 2
  }
  if (command.kind === 'help') {
    await print(`${DLQ_USAGE}\n`)
    return 0
  }
  try {
    await run(command, loadWorkerConfig({ file: command.configFile }))
    return 0
  } catch (err) {
    const detail = isMqfnError(err) ? `${err.code}: ${err.message}` : errorMessage(err)
    const stack = !isMqfnError(err) && err instanceof Error && err.stack ? `${err.stack}\n` : ''
    await write(process.stderr, `mqfn dlq: ${detail}\n${stack}`)
    return 1
  }
}

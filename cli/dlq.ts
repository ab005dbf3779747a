import type { Db } from 'mongodb'
import { HELP, parseCommand, positiveInt, parseTime, UsageError, write } from './args.ts'
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
  type DeadLetterDocument,
} from '../runtime/redelivery/index.ts'
import { connectMongo, databaseName } from '../runtime/mongo.ts'

/*
 * `mqfn dlq list | show | retry | purge`: argument parsing and printing. The
 * operations are in runtime/redelivery/. Exit status: 0 done, 1 operational error
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

export type DlqCommand =
  | { kind: 'list'; filter: DeadLetterFilter; limit: number; json: boolean; configFile?: string }
  | { kind: 'show'; id: string; json: boolean; configFile?: string }
  | { kind: 'retry'; filter: DeadLetterFilter; attempts: number; dryRun: boolean; configFile?: string }
  | { kind: 'purge'; selection: DeadLetterFilter | 'all'; dryRun: boolean; configFile?: string }

const COMMANDS = ['list', 'show', 'retry', 'purge'] as const
type Command = (typeof COMMANDS)[number]

function isCommand(s: string | undefined): s is Command {
  return (COMMANDS as readonly (string | undefined)[]).includes(s)
}

const text = { type: 'string' } as const
const flag = { type: 'boolean' } as const
const FILTERS = { type: text, handler: text, since: text, until: text } as const
const OPTIONS = {
  list: { ...HELP, ...FILTERS, limit: text, json: flag, config: text },
  show: { ...HELP, json: flag, config: text },
  retry: { ...HELP, ...FILTERS, attempts: text, 'dry-run': flag, config: text },
  purge: { ...HELP, ...FILTERS, 'dry-run': flag, all: flag, config: text },
} as const

interface RawArgs {
  positional: string[]
  values: { type?: string; handler?: string; since?: string; until?: string; limit?: string; attempts?: string; config?: string; json?: boolean; 'dry-run'?: boolean; all?: boolean }
}

function parseFilter(raw: RawArgs, now: Date): DeadLetterFilter {
  const filter: DeadLetterFilter = {}
  if (raw.positional.length > 0) filter.ids = raw.positional
  const type = raw.values.type
  if (type !== undefined) {
    if (!isEventType(type)) throw new UsageError(`--type: expected an event type (${EVENT_TYPES.join(', ')}), got ${JSON.stringify(type)}`)
    filter.type = type
  }
  const handler = raw.values.handler
  if (handler !== undefined) {
    const [event, name, ...more] = handler.split('/')
    if (!isEventType(event ?? '') || more.length > 0 || (name !== undefined && !/^[A-Za-z0-9_-]+$/.test(name))) {
      throw new UsageError(`--handler: expected a handler name (<event> or <event>/<name>, e.g. published/alerts), got ${JSON.stringify(handler)}`)
    }
    filter.handler = handler
  }
  const since = raw.values.since
  const until = raw.values.until
  if (since !== undefined) filter.since = parseTime('--since', since, now)
  if (until !== undefined) filter.until = parseTime('--until', until, now)
  if (filter.since && filter.until && filter.since > filter.until) {
    throw new UsageError(`--since (${filter.since.toISOString()}) is later than --until (${filter.until.toISOString()})`)
  }
  return filter
}

/** `args` are what follows `mqfn dlq`; `now` anchors relative times; `undefined`: --help was printed. */
export function parseDlqArgs(args: readonly string[], now: Date): DlqCommand | undefined {
  const [sub, ...rest] = args
  if (sub === 'help' || sub === '--help' || sub === '-h') return void process.stdout.write(`${DLQ_USAGE}\n`)
  if (sub === undefined) throw new UsageError('missing command: list, show, retry or purge', 'dlq')
  if (sub.startsWith('-')) throw new UsageError(`unknown option ${sub.split('=')[0]}`, 'dlq')
  if (!isCommand(sub)) throw new UsageError(`unknown command ${JSON.stringify(sub)}: expected list, show, retry or purge`, 'dlq')
  const parsed = parseCommand(`dlq ${sub}`, DLQ_USAGE, { args: [...rest], options: OPTIONS[sub], allowPositionals: true })
  if (!parsed) return undefined
  // OPTIONS[sub] types each value (string or boolean); indexed by a union, TypeScript loses that
  const raw: RawArgs = { positional: parsed.positionals, values: parsed.values as RawArgs['values'] }
  try {
    return dlqCommand(sub, raw, now)
  } catch (err) {
    throw err instanceof UsageError ? new UsageError(err.message, `dlq ${sub}`) : err
  }
}

function dlqCommand(sub: Command, raw: RawArgs, now: Date): DlqCommand {
  const configFile = raw.values.config
  const json = raw.values.json === true
  const dryRun = raw.values['dry-run'] === true
  switch (sub) {
    case 'list': {
      if (raw.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(raw.positional[0])} (list takes filters, not ids; dlq show <id> shows one)`)
      return { kind: 'list', filter: parseFilter(raw, now), limit: positiveInt('--limit', raw.values.limit, 50), json, configFile }
    }
    case 'show': {
      const [id, ...extra] = raw.positional
      if (id === undefined || extra.length > 0) throw new UsageError(`expected one id, got ${raw.positional.length}`)
      return { kind: 'show', id, json, configFile }
    }
    case 'retry':
      return { kind: 'retry', filter: parseFilter(raw, now), attempts: positiveInt('--attempts', raw.values.attempts, 1), dryRun, configFile }
    case 'purge': {
      const filter = parseFilter(raw, now)
      const all = raw.values.all === true
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

async function run(command: DlqCommand, config: Readonly<WorkerConfig>): Promise<void> {
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

/** `mqfn dlq ...`; resolves to the exit status (a usage error throws UsageError: 2). */
export async function dlqMain(args: readonly string[]): Promise<number> {
  const command = parseDlqArgs(args, new Date())
  if (!command) return 0
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

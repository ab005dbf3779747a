import { access, mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { EVENT_TYPES, isEventType, TOPIC_EVENTS, type EventType } from '../common/event-types.ts'
import { loadWorkerConfig } from '../runtime/config.ts'
import { HELP, parseCommand, UsageError } from './args.ts'

/*
 * `mqfn new <event> [name]`: writes a typed handler file from a template, at the path
 * the scanner expects (functions/<event>.ts or functions/<event>/<name>.ts).
 * Exit status: 0 written, 1 the file exists, 2 usage error.
 */

export const NEW_USAGE = `usage: mqfn new <event> [name]

writes functions/<event>.ts, or functions/<event>/<name>.ts when a name is given
(several handlers of one event). The functions directory is MQFN_FUNCTIONS_DIR (default functions).
events: ${EVENT_TYPES.join(', ')}`

const TOPIC_EVENT_SET: ReadonlySet<string> = new Set(TOPIC_EVENTS)

const BODIES: Partial<Record<EventType, string>> = {
  published: "  ctx.log.info({ topic: event.topic, bytes: event.payload.length, qos: event.qos }, 'message')",
  delivered: "  ctx.log.info({ clientId: event.clientId, topic: event.topic, messageId: event.messageId }, 'delivered')",
  subscribed: "  ctx.log.info({ clientId: event.clientId, subscriptions: event.subscriptions }, 'subscribed')",
  unsubscribed: "  ctx.log.info({ clientId: event.clientId, topics: event.topics }, 'unsubscribed')",
  clientDisconnecting: "  ctx.log.info({ clientId: event.clientId, reason: event.reason }, 'disconnecting')",
  clientDisconnected: "  ctx.log.info({ clientId: event.clientId, reason: event.reason }, 'disconnected')",
  connectionError: "  ctx.log.warn({ clientId: event.clientId, reason: event.reason, error: event.error.message }, 'connection refused')",
  ready: "  ctx.log.info({ brokerId: event.brokerId, listeners: event.listeners }, 'broker started')",
  closed: "  ctx.log.info({ brokerId: event.brokerId, clients: event.clients }, 'broker stopped')",
}

export function handlerTemplate(event: EventType): string {
  const topic = TOPIC_EVENT_SET.has(event) ? "  /** MQTT topic filter(s); + and # allowed. */\n  topic: '#',\n" : ''
  const body = BODIES[event] ?? `  ctx.log.info({ clientId: event.clientId }, '${event}')`
  return `import { defineHandler, type HandlerConfig } from 'mqtt-functions'

export const config: HandlerConfig = {
${topic}  /** Attempts in all; after the last one the event is dead-lettered (mqfn dlq). */
  attempts: 3,
  /** Milliseconds per attempt; ctx.signal is aborted then. */
  timeout: 30_000,
}

export default defineHandler('${event}', async (event, ctx) => {
${body}
})
`
}

export async function newMain(args: readonly string[]): Promise<number> {
  const parsed = parseCommand('new', NEW_USAGE, { args: [...args], allowPositionals: true, options: { ...HELP } })
  if (!parsed) return 0
  const [event, name, ...extra] = parsed.positionals
  if (event === undefined) throw new UsageError(`missing event name: one of ${EVENT_TYPES.join(', ')}`)
  if (!isEventType(event)) throw new UsageError(`"${event}" is not an event name. Valid names: ${EVENT_TYPES.join(', ')}`)
  if (extra.length > 0 || (name !== undefined && !/^[A-Za-z0-9_-]+$/.test(name))) {
    throw new UsageError('the name must be one word of letters, digits, "-" and "_"')
  }
  const dir = loadWorkerConfig().functionsDir
  const path = name ? join(dir, event, `${name}.ts`) : join(dir, `${event}.ts`)
  const shown = relative(process.cwd(), path) || path
  if (await access(path).then(() => true, () => false)) {
    process.stderr.write(`mqfn new: ${shown} exists; not overwritten\n`)
    return 1
  }
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, handlerTemplate(event))
  console.log(`wrote ${shown}`)
  return 0
}

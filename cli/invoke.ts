import { readFile } from 'node:fs/promises'
import type { Db } from 'mongodb'
import { errorMessage, isMqfnError } from '../common/errors.ts'
import { decodeEvent, parseWireEvent, type WireEvent } from '../common/events.ts'
import { createLogger } from '../common/logger.ts'
import { assertRedisReachable } from '../common/redis.ts'
import { loadWorkerConfig } from '../runtime/config.ts'
import { Invoker } from '../runtime/invoke.ts'
import { loadHandlers, type LoadedHandler } from '../runtime/load.ts'
import { connectMongo, databaseName } from '../runtime/mongo.ts'
import { EVENTS_COLLECTION, fromDocument, type EventDocument } from '../runtime/store/event-log.ts'
import { HELP, parseCommand, UsageError } from './args.ts'

/*
 * `mqfn invoke <handler>`: one handler, once, on one event, against the real store
 * (ctx.db is the worker's database, ctx.publish goes through the outbox). The event
 * comes from a JSON file, from --topic/--payload, or from the event log.
 * Exit status: 0 the handler succeeded, 1 it failed (or a server is unreachable), 2 usage error.
 */

export const INVOKE_USAGE = `usage: mqfn invoke <handler> (--event <file.json> | --topic <topic> [--payload <text>] [--client <id>] [--qos 0|1|2] | --from-log <eventId>)

  <handler>          its name: functions/published/alerts.ts is published/alerts
  --event <file>     an event as JSON; id, ts, brokerId, epoch and seq may be left out, and a
                     published event's payload given as text in "payloadText" instead of base64 "payload"
  --topic <topic>    a published event from a client (default client id mqfn-invoke)
  --from-log <id>    an event recorded in the event log, replayed into this handler

Configured as mqfn worker (REDIS_URL, MONGO_URL, MQFN_DATABASE, MQFN_PREFIX, MQFN_FUNCTIONS_DIR).`

const defaults = () => ({ id: `invoke-${Date.now().toString(36)}`, ts: Date.now(), brokerId: 'mqfn-invoke', epoch: 1, seq: 1 })

async function eventFromFile(path: string, handler: LoadedHandler): Promise<unknown> {
  const raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
  const { payloadText, ...rest } = raw
  const event: Record<string, unknown> = { ...defaults(), type: handler.event, ...rest }
  if (typeof payloadText === 'string') event.payload = Buffer.from(payloadText, 'utf8').toString('base64')
  if (event.type === 'published') event.retain ??= false
  if (event.type === 'published') event.dup ??= false
  if (event.type === 'published') event.qos ??= 0
  if (event.type === 'published') event.payload ??= ''
  return event
}

async function eventFromLog(db: Db, id: string): Promise<unknown> {
  const doc = await db.collection<EventDocument>(EVENTS_COLLECTION).findOne({ _id: id })
  if (!doc) throw new UsageError(`no event ${JSON.stringify(id)} in the event log`)
  return fromDocument(doc)
}

export async function invokeMain(args: readonly string[]): Promise<number> {
  const parsed = parseCommand('invoke', INVOKE_USAGE, {
    args: [...args],
    allowPositionals: true,
    options: {
      ...HELP, event: { type: 'string' }, topic: { type: 'string' }, payload: { type: 'string' }, client: { type: 'string' },
      qos: { type: 'string' }, 'from-log': { type: 'string' }, config: { type: 'string' },
    },
  })
  if (!parsed) return 0
  const { values, positionals } = parsed
  const sources = [values.event, values.topic, values['from-log']].filter((v) => v !== undefined)
  if (positionals.length !== 1 || sources.length !== 1) throw new UsageError('name one handler and exactly one of --event, --topic, --from-log')
  const qos = values.qos === undefined ? 0 : Number(values.qos)
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new UsageError(`--qos must be 0, 1 or 2, got ${JSON.stringify(values.qos)}`)
  const name = positionals[0] as string
  let cleanup: (() => Promise<void>) | undefined
  try {
    const config = loadWorkerConfig({ file: values.config })
    const log = createLogger('invoke', config.logLevel)
    // the handler runs as the worker runs it: in its own thread, with its timeout and memory cap
    const invoker = new Invoker(
      { mongoUrl: config.mongoUrl, database: databaseName(config), redisUrl: config.redisUrl, prefix: config.prefix, logLevel: config.logLevel, role: 'invoke' },
      log,
    )
    cleanup = () => invoker.close()
    const loaded = await loadHandlers(config.functionsDir, (file, module, display) => invoker.load(file, module, display))
    cleanup = async () => {
      await invoker.close()
      await loaded.dispose()
    }
    const handler = loaded.handlers.find((h) => h.name === name)
    if (!handler) {
      const broken = loaded.errors.find((e) => e.error.message.includes(name))
      const known = loaded.handlers.map((h) => h.name).join(', ') || 'none'
      throw new UsageError(broken ? broken.error.message : `no handler "${name}" in ${config.functionsDir}; handlers: ${known}`)
    }
    if (values.topic !== undefined && handler.event !== 'published') {
      throw new UsageError(`--topic makes a published event, and ${name} handles ${handler.event}; use --event <file.json>`)
    }
    await assertRedisReachable(config.redisUrl, config.connectTimeoutMs)
    const mongo = await connectMongo(config, 'mqfn-invoke')
    const previous = cleanup
    cleanup = async () => {
      await mongo.close()
      await previous()
    }
    const db = mongo.db(databaseName(config))

    const raw = values['from-log'] !== undefined
      ? await eventFromLog(db, values['from-log'])
      : values.event !== undefined
        ? await eventFromFile(values.event, handler)
        : {
            ...defaults(), type: 'published', clientId: values.client ?? 'mqfn-invoke', topic: values.topic, qos, retain: false, dup: false,
            payload: Buffer.from(values.payload ?? '', 'utf8').toString('base64'),
          }
    const checked = parseWireEvent(raw)
    if (!checked.ok) throw new UsageError(`the event is not valid: ${checked.error}`)
    const wire: WireEvent = checked.event
    if (wire.type !== handler.event) throw new UsageError(`the event is a ${wire.type} event, and ${name} handles ${handler.event}`)
    const event = decodeEvent(wire)
    if (!handler.wants(event)) log.warn({ topic: 'topic' in event ? event.topic : undefined }, `${name}'s topic filter would not route this event to it; running it anyway`)

    const started = performance.now()
    const result = await invoker.invoke(handler, wire, 1)
    const ms = (performance.now() - started).toFixed(1)
    if (result.ok) {
      console.log(`mqfn invoke: ${name} succeeded in ${ms} ms on event ${wire.id}`)
      return 0
    }
    process.stderr.write(`mqfn invoke: ${name} failed in ${ms} ms on event ${wire.id}\n${result.error.stack ?? `${result.error.name}: ${result.error.message}`}\n`)
    return 1
  } catch (err) {
    if (err instanceof UsageError) throw err
    process.stderr.write(`mqfn invoke: ${isMqfnError(err) ? `${err.code}: ` : ''}${errorMessage(err)}\n`)
    return 1
  } finally {
    await cleanup?.()
  }
}

/**
 * The public surface for handler authors: `import { defineHandler } from 'mqtt-functions'`.
 *
 * @example
 * ```ts
 * // functions/published.ts
 * import { defineHandler, type HandlerConfig } from 'mqtt-functions'
 *
 * export const config: HandlerConfig = { topic: 'sensors/#', attempts: 5 }
 *
 * export default defineHandler('published', async (event, ctx) => {
 *   await ctx.db.collection('readings').insertOne({ topic: event.topic, value: Number(event.payload.toString()) })
 * })
 * ```
 */
import type { Db } from 'mongodb'
import type { Logger } from 'pino'
import type { EventType } from '../common/event-types.ts'
import type { EventOf } from '../common/events.ts'

export { EVENT_TYPES, DISCONNECT_REASONS } from '../common/event-types.ts'
export type { EventType, DisconnectReason } from '../common/event-types.ts'
export type { MqfnEvent, EventOf } from '../common/events.ts'
export { topicMatches } from '../common/topic.ts'
export { MqfnError, isMqfnError, ERROR_CODES, type ErrorCode } from '../common/errors.ts'
/** True for MongoDB's duplicate-key error (code 11000): for a write keyed by `event.id`, the work is already done. */
export { isDuplicateKey } from './store/mongo-errors.ts'

export interface PublishOptions {
  /** @defaultValue 0 */
  qos?: 0 | 1 | 2
  /** @defaultValue false */
  retain?: boolean
  /** MQTT 5 properties of the message; MQTT 3.1.1 subscribers get it without them. */
  properties?: PublishProperties
}

/**
 * MQTT 5 PUBLISH properties a function may set [MQTT-3.3.2.3]; the broker forwards
 * them unchanged to MQTT 5 subscribers.
 */
export interface PublishProperties {
  /** true: the payload is UTF-8 text (checked). */
  payloadFormatIndicator?: boolean
  /** Seconds the message may wait for a subscriber before it is dropped. */
  messageExpiryInterval?: number
  contentType?: string
  /** Where the receiver should answer (no wildcards). */
  responseTopic?: string
  /** Bytes the receiver's answer carries back; a string is sent as UTF-8. */
  correlationData?: Uint8Array | string
  /** A name given an array is sent once per value. */
  userProperties?: Record<string, string | string[]>
}

/** What a handler gets besides its event. */
export interface HandlerContext {
  /**
   * The MongoDB database the runtime writes its event log to. `collection(name).insertOne(doc)`
   * without options shares a round trip with concurrent runs' inserts (one unordered
   * insertMany), each call settling as its own insertOne would (docs/handlers.md).
   */
  readonly db: Db
  /** A pino logger bound to this event (eventId, clientId) and handler. */
  readonly log: Logger
  /**
   * Publishes to devices through the broker. Resolves once the message is stored in
   * Redis: it is delivered even if no broker is up right now. Objects are sent as JSON.
   * Messages published here are trusted: they skip the broker's authorization.
   */
  publish(topic: string, payload: string | Uint8Array | object, options?: PublishOptions): Promise<void>
  /**
   * Answers an MQTT 5 request: publishes to the event's response topic with its
   * correlation data, at the request's QoS, like `publish` otherwise. Throws
   * MQFN_ERR_REPLY when the event has no response topic (not a `published` event,
   * or a 3.1.1 message). `properties` are added (their correlation data is ignored).
   *
   * @example
   * ```ts
   * export default defineHandler('published', async (event, ctx) => {
   *   if (event.properties?.responseTopic) await ctx.reply({ ok: true })
   * })
   * ```
   */
  reply(payload: string | Uint8Array | object, properties?: Omit<PublishProperties, 'correlationData'>): Promise<void>
  /** 1 on the first run, 2 on the first retry, ... */
  readonly attempt: number
  /** Aborted when the handler's timeout passes; pass it to fetch, database calls, etc. */
  readonly signal: AbortSignal
  /** The handler's name: its path under functions/ without extension. */
  readonly handler: string
}

export type HandlerFunction<T extends EventType> = (event: EventOf<T>, ctx: HandlerContext) => unknown

/** The runtime checks it against the file's location, so `functions/published.ts` cannot hold a `subscribed` handler. */
export const HANDLER_EVENT: unique symbol = Symbol.for('mqtt-functions.handler-event') as never

export type Handler<T extends EventType> = HandlerFunction<T> & { readonly [HANDLER_EVENT]: T }

/** Where a handler's payload schema travels with its function (read by the runtime). */
export const HANDLER_PAYLOAD: unique symbol = Symbol.for('mqtt-functions.handler-payload') as never

/** Any zod schema (or anything with zod's safeParse). */
export interface PayloadSchema<Out = unknown> {
  safeParse(data: unknown): { success: true; data: Out } | { success: false; error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } }
}

/** A published event whose JSON payload passed the handler's schema: `data` is the parsed payload. */
export type ParsedEvent<Out> = EventOf<'published'> & { readonly data: Out }

/**
 * Declares a handler: the function itself, typed for the event, marked with the event name.
 *
 * With `{ payload: schema }` (a zod schema), a published handler receives the JSON
 * payload parsed and validated as `event.data`; an event whose payload is not JSON or
 * fails the schema never reaches the handler and is dead-lettered at once with the
 * validation message (a retry cannot fix it).
 *
 * @example
 * ```ts
 * export default defineHandler('published', { payload: z.object({ celsius: z.number() }) }, async (event, ctx) => {
 *   if (event.data.celsius > 60) await ctx.publish('alerts/heat', event.data)
 * })
 * ```
 */
export function defineHandler<T extends EventType>(event: T, fn: HandlerFunction<T>): Handler<T>
export function defineHandler<Out>(
  event: 'published',
  options: { payload: PayloadSchema<Out> },
  fn: (event: ParsedEvent<Out>, ctx: HandlerContext) => unknown,
): Handler<'published'>
export function defineHandler(event: EventType, a: unknown, b?: unknown): Handler<'published'> {
  const fn = (typeof a === 'function' ? a : b) as Handler<'published'>
  Object.defineProperty(fn, HANDLER_EVENT, { value: event })
  if (typeof a === 'object' && a !== null) Object.defineProperty(fn, HANDLER_PAYLOAD, { value: (a as { payload: PayloadSchema }).payload })
  return fn
}

/** The optional `export const config` of a handler file. */
export interface HandlerConfig {
  /**
   * MQTT topic filter(s), `+` and `#` allowed. Only for published, delivered,
   * subscribed and unsubscribed handlers. @defaultValue every topic
   */
  topic?: string | string[]
  /** Milliseconds before an attempt is aborted and counted as failed. @defaultValue 30000 */
  timeout?: number
  /** Attempts in all, the first one included; 1 means no retry. @defaultValue 3 */
  attempts?: number
  /** Delay before the first retry in ms; doubles each retry, with jitter. @defaultValue 1000 */
  backoff?: number
  /** Most runs of this handler at once in one worker process. @defaultValue 16 */
  concurrency?: number
  /**
   * Events of one client reach this handler one at a time, in (epoch, seq) order, across
   * every worker; different clients still run in parallel. An event that fails holds
   * that client's later events back until it succeeds or is dead-lettered.
   * Limits (order across connections, gaps): docs/handlers.md. @defaultValue false
   */
  ordered?: boolean
  /**
   * Heap cap of the handler's thread in MB (V8's old generation). Passing it stops the
   * thread: each attempt running in it fails with `out-of-memory`. Buffers live outside
   * this heap and are not counted. @defaultValue 256
   */
  memoryMb?: number
}

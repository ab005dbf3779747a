import { isUtf8 } from 'node:buffer'
import type { Queue } from 'bullmq'
import type { Db } from 'mongodb'
import { mqfnError } from '../common/errors.ts'
import type { MqfnEvent } from '../common/events.ts'
import type { Logger } from '../common/logger.ts'
import { OUTBOX_JOB_OPTIONS, JOB_PUBLISH, type OutboxJobData, type OutboxProperties } from '../common/queues.ts'
import type { HandlerContext, PublishOptions, PublishProperties } from './api.ts'

function toBuffer(payload: string | Uint8Array | object): Buffer {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8')
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  if (payload === null || typeof payload !== 'object') {
    throw mqfnError('MQFN_ERR_PUBLISH', `payload must be a string, bytes or a JSON object, got ${payload === null ? 'null' : typeof payload}`)
  }
  return Buffer.from(JSON.stringify(payload), 'utf8')
}

const bad = (detail: string) => mqfnError('MQFN_ERR_PUBLISH', detail)

/** Checks what the spec constrains [MQTT-3.3.2.3] and encodes the rest for the outbox job. */
function encodeProperties(p: PublishProperties, payload: Buffer): OutboxProperties {
  const out: OutboxProperties = {}
  if (p.payloadFormatIndicator !== undefined) {
    // [MQTT-3.3.2-4]: indicator 1 promises UTF-8; a receiver may refuse a payload that breaks it
    if (p.payloadFormatIndicator && !isUtf8(payload)) throw bad('payloadFormatIndicator is true but the payload is not UTF-8')
    out.payloadFormatIndicator = p.payloadFormatIndicator === true
  }
  if (p.messageExpiryInterval !== undefined) {
    const s = p.messageExpiryInterval
    if (!Number.isInteger(s) || s < 0 || s > 0xffffffff) throw bad(`messageExpiryInterval must be whole seconds from 0 to 4294967295, got ${String(s)}`)
    out.messageExpiryInterval = s
  }
  if (p.contentType !== undefined) out.contentType = String(p.contentType)
  if (p.responseTopic !== undefined) {
    // [MQTT-3.3.2-14]: a response topic is a topic name
    if (typeof p.responseTopic !== 'string' || p.responseTopic.length === 0 || /[+#]/.test(p.responseTopic)) throw bad(`responseTopic must be a topic name without wildcards, got ${JSON.stringify(p.responseTopic)}`)
    out.responseTopic = p.responseTopic
  }
  if (p.correlationData !== undefined) out.correlationData = toBuffer(p.correlationData).toString('base64')
  if (p.userProperties !== undefined) {
    for (const [name, value] of Object.entries(p.userProperties)) {
      if (typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) throw bad(`userProperties.${name} must be a string or an array of strings`)
    }
    out.userProperties = p.userProperties
  }
  return out
}

/** ctx.publish: validated here, so a handler learns of a bad topic at once, not in the broker's log. */
export function createPublisher(outbox: Queue<OutboxJobData>): HandlerContext['publish'] {
  return async (topic: string, payload: string | Uint8Array | object, options: PublishOptions = {}) => {
    if (typeof topic !== 'string' || topic.length === 0) throw mqfnError('MQFN_ERR_PUBLISH', 'topic must be a non-empty string')
    if (/[+#]/.test(topic)) throw mqfnError('MQFN_ERR_PUBLISH', `topic "${topic}" contains a wildcard; wildcards are for subscriptions [MQTT-3.3.2-2]`)
    const qos = options.qos ?? 0
    if (qos !== 0 && qos !== 1 && qos !== 2) throw mqfnError('MQFN_ERR_PUBLISH', `qos must be 0, 1 or 2, got ${String(qos)}`)
    const bytes = toBuffer(payload)
    const job: OutboxJobData = { topic, payload: bytes.toString('base64'), qos, retain: options.retain === true }
    if (options.properties) job.properties = encodeProperties(options.properties, bytes)
    await outbox.add(JOB_PUBLISH, job, OUTBOX_JOB_OPTIONS)
  }
}

/** ctx.reply: the request's response topic and correlation data [MQTT-4.10], at its QoS. */
function createReply(publish: HandlerContext['publish'], event: MqfnEvent | undefined): HandlerContext['reply'] {
  return async (payload, properties = {}) => {
    const request = event?.type === 'published' ? event.properties : undefined
    if (!request?.responseTopic) {
      throw mqfnError('MQFN_ERR_REPLY', event?.type === 'published'
        ? 'the message has no response topic (an MQTT 5 publisher sets one to ask for an answer; MQTT 3.1.1 cannot)'
        : `a ${event?.type ?? 'missing'} event has no response topic; only published events can be answered`)
    }
    const { correlationData: _ignored, ...rest } = properties as PublishProperties
    const answer: PublishProperties = request.correlationData === undefined ? rest : { ...rest, correlationData: request.correlationData }
    await publish(request.responseTopic, payload, { qos: event?.type === 'published' ? event.qos : 0, properties: answer })
  }
}

export interface ContextDeps {
  db: Db
  log: Logger
  publish: HandlerContext['publish']
}

/**
 * ctx.signal, made on first use: most handlers never read it, and an AbortController
 * per event was a measurable share of a no-op attempt (docs/performance.md, "Worker
 * CPU per event"). An abort before the first read gives an already aborted signal.
 */
export class LazyAbort {
  private controller: AbortController | undefined
  private aborted = false
  private reason: unknown

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.aborted) this.controller.abort(this.reason)
    }
    return this.controller.signal
  }

  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.controller?.abort(reason)
  }
}

/**
 * The one place ctx is put together (in the handler's thread). The logger is made on
 * first use: a pino child per event cost more than the rest of an attempt of a no-op
 * handler, and most handlers log nothing on most events.
 */
export function createContext(deps: ContextDeps, handler: string, attempt: number, abort: { readonly signal: AbortSignal }, event: MqfnEvent): HandlerContext {
  let log: HandlerContext['log'] | undefined
  return {
    db: deps.db,
    get log() {
      return (log ??= deps.log.child({ eventId: event.id, event: event.type, ...('clientId' in event ? { clientId: event.clientId } : {}), handler }))
    },
    publish: deps.publish,
    reply: createReply(deps.publish, event),
    attempt,
    get signal() {
      return abort.signal
    },
    handler,
  }
}

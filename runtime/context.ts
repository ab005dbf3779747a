import type { Queue } from 'bullmq'
import type { Db } from 'mongodb'
import { mqfnError } from '../common/errors.ts'
import type { Logger } from '../common/logger.ts'
import { OUTBOX_JOB_OPTIONS, JOB_PUBLISH, type OutboxJobData } from '../common/queues.ts'
import type { HandlerContext, PublishOptions } from './api.ts'

function encodePayload(payload: string | Uint8Array | object): string {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8').toString('base64')
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64')
  if (payload === null || typeof payload !== 'object') {
    throw mqfnError('MQFN_ERR_PUBLISH', `payload must be a string, bytes or a JSON object, got ${payload === null ? 'null' : typeof payload}`)
  }
  return Buffer.from(JSON.stringify(payload), 'utf8').toString('base64')
}

/** ctx.publish: validated here, so a handler learns of a bad topic at once, not in the broker's log. */
export function createPublisher(outbox: Queue<OutboxJobData>): HandlerContext['publish'] {
  return async (topic: string, payload: string | Uint8Array | object, options: PublishOptions = {}) => {
    if (typeof topic !== 'string' || topic.length === 0) throw mqfnError('MQFN_ERR_PUBLISH', 'topic must be a non-empty string')
    if (/[+#]/.test(topic)) throw mqfnError('MQFN_ERR_PUBLISH', `topic "${topic}" contains a wildcard; wildcards are for subscriptions [MQTT-3.3.2-2]`)
    const qos = options.qos ?? 0
    if (qos !== 0 && qos !== 1 && qos !== 2) throw mqfnError('MQFN_ERR_PUBLISH', `qos must be 0, 1 or 2, got ${String(qos)}`)
    await outbox.add(JOB_PUBLISH, { topic, payload: encodePayload(payload), qos, retain: options.retain === true }, OUTBOX_JOB_OPTIONS)
  }
}

export interface ContextDeps {
  db: Db
  log: Logger
  publish: HandlerContext['publish']
}

/**
 * The one place ctx is put together (in the handler's thread). The logger is made on
 * first use: a pino child per event cost more than the rest of an attempt of a no-op
 * handler, and most handlers log nothing on most events.
 */
export function createContext(deps: ContextDeps, handler: string, attempt: number, signal: AbortSignal, bindings: Record<string, unknown>): HandlerContext {
  let log: HandlerContext['log'] | undefined
  return {
    db: deps.db,
    get log() {
      return (log ??= deps.log.child({ ...bindings, handler }))
    },
    publish: deps.publish,
    attempt,
    signal,
    handler,
  }
}

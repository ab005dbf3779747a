import { DISCONNECT_REASONS, isEventType } from '../common/event-types.ts'
import { parseWireEvent, type WireEvent } from '../common/events.ts'

/*
 * The queue boundary. A batch job's events were built by our broker from the same
 * schema (or read back from the event log by `mqfn replay`, which parses each one),
 * and Redis is inside the deployment's trust boundary; re-parsing every event through
 * zod cost the worker ~5 µs of CPU per event plus the garbage of a copy of it (the
 * profile in docs/performance.md, "Pipeline"). So an event whose shape holds — the
 * fields the runtime itself reads (the event log's id and time, presence's client,
 * epoch and reason, routing's topics), of the right types — is taken as it is, and
 * only one that fails this cheap check goes through zod, which names what is wrong
 * for its dead letter. Fields the check does not read reach handlers as the broker
 * wrote them.
 */

const REASONS = new Set<string>(DISCONNECT_REASONS)

type Fields = Record<string, unknown>

const positiveInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0
const isString = (v: unknown) => typeof v === 'string'

/** True when the fields the runtime relies on are there, of their types. */
function shapeHolds(e: Fields): boolean {
  const id = e.id
  if (!isString(id) || (id as string).length === 0 || (id as string).length > 64) return false
  if (!Number.isInteger(e.ts) || (e.ts as number) < 0 || !isString(e.brokerId) || !isString(e.type) || !isEventType(e.type as string)) return false
  if (e.type === 'ready' || e.type === 'closed') return false // rare: zod checks them whole
  if (!(isString(e.clientId) || (e.type === 'connectionError' && e.clientId === null)) || !positiveInt(e.epoch) || !positiveInt(e.seq)) return false
  switch (e.type) {
    case 'published':
      return isString(e.topic) && (e.topic as string).length > 0 && isString(e.payload) && (e.qos === 0 || e.qos === 1 || e.qos === 2) && typeof e.retain === 'boolean'
    case 'delivered':
      return isString(e.topic) && Number.isInteger(e.messageId)
    case 'clientConnected':
      return typeof e.clean === 'boolean' && Number.isInteger(e.keepalive)
    case 'clientDisconnected':
    case 'clientDisconnecting':
    case 'connectionError':
      return REASONS.has(e.reason as string)
    case 'subscribed':
      return Array.isArray(e.subscriptions) && e.subscriptions.every((s: unknown) => typeof s === 'object' && s !== null && isString((s as Fields).topic))
    case 'unsubscribed':
      return Array.isArray(e.topics) && e.topics.every(isString)
    default:
      return true
  }
}

export interface BatchEvents {
  valid: WireEvent[]
  /** Events that failed validation, with zod's message naming each bad field. */
  invalid: { raw: unknown; error: string }[]
}

/** Splits a batch job's events into the ones to process and the ones to dead-letter. */
export function readBatch(events: readonly unknown[]): BatchEvents {
  const out: BatchEvents = { valid: [], invalid: [] }
  for (const raw of events) {
    if (typeof raw === 'object' && raw !== null && shapeHolds(raw as Fields)) {
      out.valid.push(raw as WireEvent)
      continue
    }
    const parsed = parseWireEvent(raw)
    if (parsed.ok) out.valid.push(parsed.event)
    else out.invalid.push({ raw: parsed.raw, error: parsed.error })
  }
  return out
}

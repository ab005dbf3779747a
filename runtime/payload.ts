import { mqfnError, type MqfnError } from '../common/errors.ts'
import type { MqfnEvent } from '../common/events.ts'
import type { PayloadSchema } from './api.ts'
import { describeThrown } from './sandbox/thrown.ts'

/** JSON-parses a published payload and checks it against the handler's schema. */
export function parsePayload(schema: PayloadSchema | undefined, event: MqfnEvent): { ok: true; event: MqfnEvent } | { ok: false; error: MqfnError } {
  if (!schema || event.type !== 'published') return { ok: true, event }
  let json: unknown
  try {
    json = JSON.parse(event.payload.toString('utf8'))
  } catch (err) {
    return { ok: false, error: mqfnError('MQFN_ERR_PAYLOAD_INVALID', `is not JSON: ${describeThrown(err).message}`) }
  }
  const result = schema.safeParse(json)
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : '(payload)'}: ${i.message}`).join('; ')
    return { ok: false, error: mqfnError('MQFN_ERR_PAYLOAD_INVALID', `does not match the handler's schema: ${detail}`) }
  }
  return { ok: true, event: { ...event, data: result.data } as MqfnEvent }
}

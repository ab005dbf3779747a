import { isUtf8 } from 'node:buffer'
import type { PublishPacket } from 'aedes'

/** MQTT 5 reason code 0x99, Payload format invalid. */
export const PAYLOAD_FORMAT_INVALID = 0x99

export type PayloadFormatError = Error & { reasonCode: typeof PAYLOAD_FORMAT_INVALID }

/**
 * A PUBLISH whose Payload Format Indicator says UTF-8 (1) must carry well-formed
 * UTF-8 [MQTT-3.3.2.3.2]; a receiver may check it and answer 0x99. Returns the
 * refusal, which aedes turns into a PUBACK/PUBREC 0x99 (a QoS 0 message is dropped
 * with a clientError, having no acknowledgement), or null.
 */
export function payloadFormatInvalid(packet: PublishPacket): PayloadFormatError | null {
  if (!packet.properties?.payloadFormatIndicator) return null
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  if (isUtf8(payload)) return null
  return Object.assign(new Error('payload is not UTF-8 though its Payload Format Indicator says so'), { reasonCode: PAYLOAD_FORMAT_INVALID as typeof PAYLOAD_FORMAT_INVALID })
}

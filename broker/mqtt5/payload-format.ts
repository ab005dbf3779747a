import { isUtf8 } from 'node:buffer'
import type { PublishPacket } from 'aedes'
import { mqfnError, type MqfnError } from '../../common/errors.ts'

/** MQTT 5 reason code 0x99, Payload format invalid. */
const PAYLOAD_FORMAT_INVALID = 0x99

/**
 * A PUBLISH whose Payload Format Indicator says UTF-8 (1) must carry well-formed
 * UTF-8 (MQTT 5.0 §3.3.2.3.2); a receiver may check it and answer 0x99. Returns the
 * refusal, which aedes (patch 002) turns into a PUBACK/PUBREC 0x99 with the message
 * as Reason String, the connection kept; a QoS 0 message, which has no
 * acknowledgement, is dropped with a clientError. Null when the payload is fine.
 */
export function payloadFormatInvalid(packet: PublishPacket): (MqfnError & { reasonCode: number }) | null {
  if (!packet.properties?.payloadFormatIndicator) return null
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  if (isUtf8(payload)) return null
  return Object.assign(mqfnError('MQFN_ERR_PROTOCOL', 'the payload is not UTF-8 but its Payload Format Indicator is 1 (MQTT 5.0 §3.3.2.3.2)'), { reasonCode: PAYLOAD_FORMAT_INVALID })
}

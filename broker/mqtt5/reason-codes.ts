/** MQTT 5 reason codes the broker's own limits end or refuse with (MQTT 5.0 §2.4). */
export const REASON = {
  MALFORMED_PACKET: 0x81,
  PROTOCOL_ERROR: 0x82,
  NOT_AUTHORIZED: 0x87,
  TOPIC_FILTER_INVALID: 0x8f,
  TOPIC_NAME_INVALID: 0x90,
  PACKET_TOO_LARGE: 0x95,
  QUOTA_EXCEEDED: 0x97,
} as const

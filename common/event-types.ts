/**
 * The lifecycle events the broker captures, named after Mosca's so its users
 * recognise them. Each is one BullMQ queue and one handler file name.
 */
export const EVENT_TYPES = [
  'clientConnected',
  'clientDisconnecting',
  'clientDisconnected',
  'clientError',
  'connectionError',
  'keepaliveTimeout',
  'published',
  'delivered',
  'subscribed',
  'unsubscribed',
  'ready',
  'closed',
] as const

export type EventType = (typeof EVENT_TYPES)[number]

const typeSet: ReadonlySet<string> = new Set(EVENT_TYPES)

export function isEventType(name: string): name is EventType {
  return typeSet.has(name)
}

/** Events whose handlers may be narrowed by an MQTT topic filter in their config. */
export const TOPIC_EVENTS = ['published', 'delivered', 'subscribed', 'unsubscribed'] as const
export type TopicEventType = (typeof TOPIC_EVENTS)[number]

/**
 * Why a connection ended. Every clientDisconnecting / clientDisconnected event carries one.
 * - `disconnect`: the client sent DISCONNECT [MQTT-3.14.4]
 * - `keepalive-timeout`: nothing arrived within 1.5 × keepalive [MQTT-3.1.2-24]
 * - `takeover`: a new connection with the same client id [MQTT-3.1.4-2]
 * - `protocol-error`: a malformed or forbidden packet
 * - `not-authorized`: credentials or an authorization hook refused the client
 * - `shutdown`: the broker is closing
 * - `socket-error`: the transport failed (reset, broken pipe, drain timeout)
 * - `socket-closed`: the peer closed the connection without DISCONNECT
 * - `connect-timeout`: no CONNECT arrived in time
 * - `limit-exceeded`: a configured limit ended it (packet size, topic length or levels,
 *   connections, connect rate; the error names the setting)
 */
export const DISCONNECT_REASONS = [
  'disconnect',
  'keepalive-timeout',
  'takeover',
  'protocol-error',
  'not-authorized',
  'shutdown',
  'socket-error',
  'socket-closed',
  'connect-timeout',
  'limit-exceeded',
  /** A persistent session not connected for MQFN_SESSION_EXPIRY_SECONDS was removed with its queue. */
  'session-expired',
] as const
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number]

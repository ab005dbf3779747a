import { z } from 'zod'
import { DISCONNECT_REASONS, type EventType } from './event-types.ts'

/*
 * The event envelope, defined once: the broker builds it, the runtime validates it.
 * On the wire (BullMQ job data, JSON) payloads are base64 strings, so any bytes
 * survive; handlers receive them decoded as Buffers (see decodeEvent).
 */

const base = {
  /** Unique and sortable by capture time: the event log's document id. */
  id: z.string().min(1).max(64),
  ts: z.number().int().nonnegative(),
  brokerId: z.string().min(1),
}

/** Every event of a connection carries its epoch and a seq that grows by one per event. */
const client = {
  ...base,
  clientId: z.string(),
  epoch: z.number().int().positive(),
  seq: z.number().int().positive(),
  /**
   * Seq of this connection's previous event of the same type, 0 for its first: lets
   * ordered handlers tell a gap (an event not seen yet) from the seq other types used.
   * Absent from events of older brokers and from wills published after the session ended.
   */
  prev: z.number().int().nonnegative().optional(),
  remoteAddress: z.string().optional(),
  username: z.string().optional(),
}

const errorInfo = z.object({ message: z.string(), code: z.string().optional() })
const reason = z.enum(DISCONNECT_REASONS)
const qos = z.union([z.literal(0), z.literal(1), z.literal(2)])
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64')
/** MQTT 5 user properties as mqtt-packet gives them: a name sent twice has an array of values. */
const userProperties = z.record(z.string(), z.union([z.string(), z.array(z.string())]))
const reasonCode = z.number().int().min(0).max(255)
const uint32 = z.number().int().min(0).max(0xffffffff)

/** CONNECT properties of an MQTT 5 client [MQTT-3.1.2.11]; absent for 3.1 / 3.1.1. */
const connectProperties = z.object({
  /** Seconds the session outlives the connection, as granted (0: it ends with it; 4294967295: never expires). */
  sessionExpiryInterval: uint32,
  /** QoS 1/2 messages the client takes in flight at once. */
  receiveMaximum: z.number().int().min(1).max(65535),
  /** The largest packet the client accepts, in bytes; absent: no limit beyond the protocol's. */
  maximumPacketSize: uint32.optional(),
  userProperties: userProperties.optional(),
})

/** PUBLISH properties of an MQTT 5 message [MQTT-3.3.2.3], forwarded unchanged; absent when none was sent. */
const publishProperties = z.object({
  /** true: the payload is UTF-8 text (payload format indicator 1). */
  payloadFormatIndicator: z.boolean().optional(),
  /** Seconds the message lives, as the publisher sent it. */
  messageExpiryInterval: uint32.optional(),
  contentType: z.string().optional(),
  /** Where the publisher wants an answer: ctx.reply publishes there. */
  responseTopic: z.string().optional(),
  /** Bytes the answer must carry back (base64 on the wire, a Buffer in handlers). */
  correlationData: base64.optional(),
  userProperties: userProperties.optional(),
})

/** MQTT 5 subscription options [MQTT-3.8.3.1]; absent for 3.1 / 3.1.1. */
const subscriptionOptions = {
  noLocal: z.boolean().optional(),
  retainAsPublished: z.boolean().optional(),
  /** 0: send retained messages at subscribe, 1: only for a new subscription, 2: never. */
  retainHandling: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
  subscriptionIdentifier: z.number().int().positive().optional(),
}

/**
 * The reason code of the MQTT 5 DISCONNECT that ended the connection, and who sent
 * it; absent when none was sent (3.1.1, or the socket just closed).
 */
const disconnectReason = {
  reasonCode: reasonCode.optional(),
  reasonCodeFrom: z.enum(['client', 'broker']).optional(),
}

export const WireEventSchema = z.discriminatedUnion('type', [
  z.object({
    ...client,
    type: z.literal('clientConnected'),
    clean: z.boolean(),
    keepalive: z.number().int().nonnegative(),
    /** 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0). */
    protocolVersion: z.number().int(),
    properties: connectProperties.optional(),
  }),
  z.object({ ...client, type: z.literal('clientDisconnecting'), reason, error: errorInfo.optional(), ...disconnectReason }),
  z.object({ ...client, type: z.literal('clientDisconnected'), reason, error: errorInfo.optional(), ...disconnectReason }),
  z.object({
    ...client,
    type: z.literal('clientError'),
    error: errorInfo,
    /** `not-authorized` for a publish the ACL refused (acknowledged per its QoS, then dropped). */
    reason: reason.optional(),
    /** The topic of the refused publish. */
    topic: z.string().optional(),
    /** MQTT 5: the reason code of the PUBACK / PUBREC that refused it (0x87, 0x90, 0x99); absent for QoS 0 and 3.1.1. */
    reasonCode: reasonCode.optional(),
    /**
     * With `limit-exceeded`: how many messages for this client were dropped in the
     * second this event sums up (broker/flow: one event per client and second).
     */
    count: z.number().int().positive().optional(),
  }),
  z.object({
    ...client,
    clientId: z.string().nullable(),
    type: z.literal('connectionError'),
    reason,
    error: errorInfo,
    /** CONNACK return code sent to a 3.1 / 3.1.1 client. */
    returnCode: z.number().int().optional(),
    /** CONNACK reason code sent to an MQTT 5 client [MQTT-3.2.2.2]. */
    reasonCode: reasonCode.optional(),
    /**
     * Present on a summary: how many connection errors of this reason from this
     * remoteAddress the one event stands for (docs/security.md "Anonymous peers").
     */
    count: z.number().int().positive().optional(),
  }),
  z.object({ ...client, type: z.literal('keepaliveTimeout'), keepalive: z.number().int().nonnegative() }),
  z.object({
    ...client,
    type: z.literal('published'),
    topic: z.string().min(1),
    payload: base64,
    qos,
    retain: z.boolean(),
    dup: z.boolean(),
    messageId: z.number().int().optional(),
    /** True when this is the client's will, published by the broker after an unexpected disconnect. */
    will: z.boolean().optional(),
    properties: publishProperties.optional(),
  }),
  z.object({
    ...client,
    type: z.literal('delivered'),
    topic: z.string(),
    qos,
    messageId: z.number().int(),
  }),
  z.object({
    ...client,
    type: z.literal('subscribed'),
    /** qos 128 marks a filter the broker refused [MQTT-3.9.3-2]. */
    subscriptions: z.array(z.object({ topic: z.string(), qos: z.number().int(), ...subscriptionOptions })),
  }),
  z.object({ ...client, type: z.literal('unsubscribed'), topics: z.array(z.string()) }),
  z.object({
    ...base,
    type: z.literal('ready'),
    version: z.string(),
    listeners: z.array(z.object({ protocol: z.string(), address: z.string(), port: z.number().int() })),
  }),
  z.object({ ...base, type: z.literal('closed'), clients: z.number().int().nonnegative() }),
])

export type WireEvent = z.infer<typeof WireEventSchema>
export type WireEventOf<T extends EventType> = Extract<WireEvent, { type: T }>

type DecodedProperties<P> = P extends { correlationData?: string } ? Omit<P, 'correlationData'> & { correlationData?: Buffer } : P
type Decoded<E> = E extends { payload: string; properties?: infer P }
  ? Omit<E, 'payload' | 'properties'> & { payload: Buffer; properties?: DecodedProperties<P> }
  : E

/** An event as handlers see it: payloads are Buffers. */
export type MqfnEvent = Decoded<WireEvent>
export type EventOf<T extends EventType> = Extract<MqfnEvent, { type: T }>

export function decodeEvent(wire: WireEvent): MqfnEvent {
  if (wire.type !== 'published') return wire
  const { properties, ...rest } = wire
  const event = { ...rest, payload: Buffer.from(wire.payload, 'base64') }
  if (!properties) return event
  const { correlationData, ...others } = properties
  return { ...event, properties: correlationData === undefined ? others : { ...others, correlationData: Buffer.from(correlationData, 'base64') } }
}

export type ParsedEvent = { ok: true; event: WireEvent } | { ok: false; error: string; raw: unknown }

/** Validates one wire event, turning a zod failure into a message that names each bad field. */
export function parseWireEvent(raw: unknown): ParsedEvent {
  const result = WireEventSchema.safeParse(raw)
  if (result.success) return { ok: true, event: result.data }
  const error = result.error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(event)'}: ${i.message}`)
    .join('; ')
  return { ok: false, error, raw }
}

import type { Client, PublishPacket } from 'aedes'
import type { WireEventOf } from '../../../common/events.ts'
import type { Capture } from '../capture.ts'

type Done = (error?: Error | null) => void
type Properties = NonNullable<WireEventOf<'published'>['properties']>

/**
 * The PUBLISH properties a handler may act on [MQTT-3.3.2.3], as sent. Not the topic
 * alias (aedes resolved it) nor subscription identifiers (those are per subscriber);
 * a will's properties include its delay, which is not the message's.
 */
function publishProperties(from: NonNullable<PublishPacket['properties']>): Properties | undefined {
  const p: Properties = {}
  let any = false
  if (from.payloadFormatIndicator !== undefined) { p.payloadFormatIndicator = from.payloadFormatIndicator; any = true }
  if (from.messageExpiryInterval !== undefined) { p.messageExpiryInterval = from.messageExpiryInterval; any = true }
  if (from.contentType !== undefined) { p.contentType = from.contentType; any = true }
  if (from.responseTopic !== undefined) { p.responseTopic = from.responseTopic; any = true }
  if (from.correlationData !== undefined) { p.correlationData = Buffer.from(from.correlationData).toString('base64'); any = true }
  if (from.userProperties !== undefined) { p.userProperties = from.userProperties; any = true }
  return any ? p : undefined
}
type InboundPacket = PublishPacket & { dup?: boolean; messageId?: number; clientId?: string }

/*
 * Runs inside authorizePublish, after the ACL allowed the packet and before aedes
 * acknowledges it: aedes writes PUBACK before its `published` hook
 * (lib/handlers/publish.js), so capturing any later could lose an acknowledged
 * message. QoS 1/2 wait until Redis holds the event; QoS 0 does not wait, unless
 * the backlog bound is reached, where waiting stops aedes reading from this client
 * (it reads the next chunk only when the current one is handled): TCP backpressure.
 */
export function capturePublish(cap: Capture, client: Client | null, packet: InboundPacket, done: Done): void {
  // A retransmitted QoS 2 PUBLISH that aedes already holds is answered with PUBREC
  // only [MQTT-4.3.3-2]; it was captured the first time.
  const inflight = (client as { _inboundInflight?: Set<number> } | null)?._inboundInflight
  if (packet.qos === 2 && packet.dup === true && packet.messageId !== undefined && inflight?.has(packet.messageId)) {
    done(null)
    return
  }
  const state = client ? cap.state(client) : undefined
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  const encoded = payload.toString('base64')
  const fields = client && state
    ? cap.fields(client, state, 'published')
    : // a will published by the broker for a client no longer connected (aedes _clearWills)
      { id: cap.nextId(), ts: Date.now(), brokerId: cap.brokerId, clientId: packet.clientId ?? '', epoch: 1, seq: 1 }
  const isWill = client !== null && client.closed
  // Built property by property: spreading `fields` into the literal took V8's slow
  // path, ~6 µs per message, 10% of the broker's CPU under QoS 1 load (docs/performance.md).
  const event: WireEventOf<'published'> = {
    id: fields.id,
    ts: fields.ts,
    brokerId: fields.brokerId,
    clientId: fields.clientId,
    epoch: fields.epoch,
    seq: fields.seq,
    type: 'published',
    topic: packet.topic,
    payload: encoded,
    qos: packet.qos,
    retain: packet.retain,
    dup: packet.dup === true,
  }
  if ('prev' in fields) event.prev = fields.prev
  if ('remoteAddress' in fields && fields.remoteAddress !== undefined) event.remoteAddress = fields.remoteAddress
  if ('username' in fields && fields.username !== undefined) event.username = fields.username
  if (packet.messageId !== undefined && packet.qos > 0) event.messageId = packet.messageId
  if (isWill || client === null) event.will = true
  // MQTT 5 only: a 3.1.1 packet has no properties, and costs this one check
  if (packet.properties) {
    const properties = publishProperties(packet.properties)
    if (properties) event.properties = properties
  }
  cap.batcher.capture(event, encoded.length + 200, packet.qos > 0 ? done : undefined)
  if (packet.qos === 0) {
    if (cap.batcher.saturated) cap.batcher.whenNotSaturated(done)
    else done(null)
  }
}

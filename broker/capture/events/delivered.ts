import type { Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import type { Capture } from '../capture.ts'
import { stateOf, type ClientState } from '../client-state.ts'

type AckPacket = { cmd: string; messageId?: number }

/**
 * aedes' `ack` event carries the stored packet, and a clean session stores none, so
 * it cannot tell which message was acknowledged. We remember each QoS 1/2 PUBLISH
 * as it is written (topic and qos by message id) and match PUBACK / PUBCOMP to it.
 */
export function onAcknowledged(cap: Capture, client: Client, ack: AckPacket): void {
  if (ack.cmd !== 'puback' && ack.cmd !== 'pubcomp') return
  const state = cap.state(client)
  if (!state || ack.messageId === undefined) return
  const sent = state.outgoing.get(ack.messageId)
  if (!sent) return
  state.outgoing.delete(ack.messageId)
  if (!cap.delivered.on) return
  // onto the fields object rather than a spread copy: V8's spread-then-add path cost
  // ~15 µs per event on this hot path (docs/performance.md)
  cap.emit(Object.assign(cap.fields(client, state, 'delivered'), { type: 'delivered' as const, topic: sent.topic, qos: sent.qos, messageId: ack.messageId }))
}

let tracking = false

/**
 * Wraps mqtt-packet's writeToStream (the one aedes writes every packet with) once per
 * process to remember outgoing QoS 1/2 publishes of connections that have our state.
 */
export function trackOutgoingPublishes(): void {
  if (tracking) return
  tracking = true
  const original = mqttPacket.writeToStream
  type Stream = Parameters<typeof original>[1] & { client?: Client }
  const wrapped = function writeToStream(packet: Parameters<typeof original>[0], stream: Stream, opts?: Parameters<typeof original>[2]) {
    if (packet.cmd === 'publish' && packet.qos !== 0 && packet.messageId !== undefined && stream.client) {
      const state = stateOf(stream.client)
      if (state) state.outgoing.set(packet.messageId, { topic: topicOf(state, packet), qos: packet.qos })
    }
    return original(packet, stream, opts)
  }
  mqttPacket.writeToStream = Object.assign(wrapped, { cacheNumbers: original.cacheNumbers })
}

/**
 * The topic a PUBLISH went to, also when it names only a topic alias the broker
 * assigned: the first PUBLISH of an alias carries the topic too [MQTT-3.3.2-12].
 */
function topicOf(state: ClientState, packet: { topic: string; properties?: { topicAlias?: number } }): string {
  const alias = packet.properties?.topicAlias
  if (alias === undefined) return packet.topic
  if (packet.topic !== '') {
    ;(state.outgoingAliases ??= new Map()).set(alias, packet.topic)
    return packet.topic
  }
  return state.outgoingAliases?.get(alias) ?? ''
}

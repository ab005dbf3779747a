import type { Client } from 'aedes'
import type { Capture } from '../capture.ts'

type AckPacket = { cmd: string; messageId?: number }

/**
 * aedes' `ack` event carries the stored packet, and a clean session stores none, so
 * it cannot tell which message was acknowledged. We remember each QoS 1/2 PUBLISH
 * as it is written (onPublishSent: topic and qos by message id) and match PUBACK /
 * PUBCOMP to it.
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

/**
 * Remembers a QoS 1/2 PUBLISH written to a connection that has our state (aedes'
 * `publishSent`, our patch 010), with the topic it names even when the wire carries
 * a topic alias. Only while `delivered` is captured: what is not remembered is
 * not matched, and costs nothing.
 */
export function onPublishSent(cap: Capture, client: Client, packet: { topic: string; qos: number; messageId?: number }): void {
  if (!cap.delivered.on || packet.messageId === undefined) return
  const state = cap.state(client)
  if (state) state.outgoing.set(packet.messageId, { topic: packet.topic, qos: packet.qos === 2 ? 2 : 1 })
}

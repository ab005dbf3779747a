import type { AedesOptions, Client, PublishPacket } from 'aedes'
import { onPublishRefused } from '../capture/events/client-error.ts'
import { capturePublish } from '../capture/events/published.ts'
import { classifyError } from '../capture/client-state.ts'
import type { Qos2Once } from '../flow/qos2-once.ts'
import { REASON } from '../mqtt5/reason-codes.ts'
import { safely, type Pipeline } from './pipeline.ts'

type Done = (error?: Error | null) => void

/** The reason code aedes acknowledges a refused MQTT 5 QoS 1/2 PUBLISH with (patch 002): the refusal's own, else 0x87; none for QoS 0, a will or 3.1.1. */
function ackReasonCode(client: Client, packet: PublishPacket, refusal: Error): number | undefined {
  if (client.version !== 5 || packet.qos === 0 || client.closed) return undefined
  return (refusal as { reasonCode?: number }).reasonCode ?? REASON.NOT_AUTHORIZED
}
type Publish = (packet: PublishPacket, client: Client, done: Done) => void

/**
 * Limits (topic length and levels), then security (the ACL), then capture. The
 * capture is here, not in aedes' `published` hook, because aedes writes PUBACK
 * before `published` runs (lib/handlers/publish.js): an event captured later could
 * be lost after its message was acknowledged. `skipPublish` (our aedes patch
 * 002+hook-events) has aedes acknowledge a packet per its QoS without publishing it.
 */
export function authorizePublishHook(publish: () => Publish, p: Pipeline, qos2: () => Qos2Once): NonNullable<AedesOptions['authorizePublish']> {
  const publishRefused = safely(p.log, 'clientError', onPublishRefused)
  const capture = (client: Client | null, packet: PublishPacket, done: Done): void => {
    try {
      if (p.forwardQos1BeforeAck && client && !client.closed && packet.qos === 1) {
        capturePublish(p.capture, client, packet, (err) => {
          if (err) return done(err)
          publish()(packet, client, (error) => {
            if (!error) packet.skipPublish = true
            done(error)
          })
        })
      } else {
        capturePublish(p.capture, client, packet, done)
      }
    } catch (error) {
      p.log.error({ err: error, clientId: client?.id, topic: packet.topic }, 'publish capture failed')
      done(error as Error)
    }
  }
  return (client, packet, done) => {
    // A will's Will Delay Interval (0x18) is the will's, not the message's: aedes
    // publishes the will with it, and a PUBLISH with a property not valid for its
    // type is malformed (MQTT 5.0 §2.2.2.2) to a strict subscriber
    const properties = packet.properties as (PublishPacket['properties'] & { willDelayInterval?: number }) | undefined
    if (properties?.willDelayInterval !== undefined) {
      const { willDelayInterval: _delay, ...message } = properties
      packet.properties = message
    }
    const over = p.limits.publish(client, packet)
    if (over) {
      // MQTT 5: PUBACK / PUBREC with the refusal's reason code (0x90, 0x99), the
      // connection kept (QoS 0: dropped), so recorded here; 3.1.1: the connection closes
      if (client?.version === 5) publishRefused(p.capture, client, packet.topic, over, classifyError(over), ackReasonCode(client, packet, over))
      return done(over)
    }
    const denied = p.security.authorizePublish(client, packet.topic)
    if (denied) {
      if (!client) return done(denied)
      publishRefused(p.capture, client, packet.topic, denied, 'not-authorized', ackReasonCode(client, packet, denied))
      // MQTT 5: aedes answers PUBACK / PUBREC with 0x87 Not authorized and keeps the
      // connection [MQTT-3.4.2-1]; 3.1.1 has no way to say it: acknowledged per its
      // QoS and dropped [MQTT-3.3.5-2]
      // A will (its client closing) is not published either way.
      if (client.version === 5 || client.closed) return done(denied)
      packet.skipPublish = true
      return done(null)
    }
    if (client && packet.qos === 2) {
      // a resend of a QoS 2 message not yet released gets its PUBREC only (broker/flow/qos2-once.ts)
      qos2().resend(client, packet, (resend) => {
        if (resend) {
          packet.skipPublish = true
          return done(null)
        }
        capture(client, packet, (err) => {
          if (err) qos2().forget(client, packet)
          done(err)
        })
      })
      return
    }
    capture(client, packet, done)
  }
}

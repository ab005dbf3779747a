import type { Aedes, Client, PublishPacket } from 'aedes'
import type { Logger } from '../../common/logger.ts'
import { throttled } from '../../common/throttle.ts'
import { clearTimersOnRemoteConnect } from './cluster-timers.ts'

/**
 * The MQTT 5 steps that observe aedes rather than decide in a hook: session timers
 * across a cluster (cluster-timers.ts), and a log line when a message is not sent to
 * a client because it exceeds the client's Maximum Packet Size [MQTT-3.1.2-25]
 * (aedes patch 002 emits `packetDropped`; at most one line per 5 s, with the count
 * left out, as one subscriber with a small maximum can drop every message).
 */
export function observeMqtt5(aedes: Aedes, log: Logger): void {
  clearTimersOnRemoteConnect(aedes)
  const dropped = throttled(5000, (suppressed, detail) => log.info({ ...(detail as object), suppressed }, 'message not sent: larger than the client\'s Maximum Packet Size'))
  aedes.on('packetDropped' as 'closed', ((client: Client, packet: PublishPacket, maximumPacketSize: number) =>
    dropped({ clientId: client.id, cmd: packet.cmd, topic: packet.topic, maximumPacketSize })) as () => void)
}

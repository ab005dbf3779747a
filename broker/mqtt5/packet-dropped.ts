import type { Client, PublishPacket } from 'aedes'
import type { Logger } from '../../common/logger.ts'
import { throttled } from '../../common/throttle.ts'

/**
 * A log line when a message is not sent to a client because it exceeds the client's
 * Maximum Packet Size [MQTT-3.1.2-25] (aedes patch 002 emits `packetDropped`;
 * broker/hooks/mqtt5.ts listens): at most one line per 5 s, with the count left out,
 * as one subscriber with a small maximum can drop every message.
 */
export function packetDroppedLog(log: Logger): (client: Client, packet: PublishPacket, maximumPacketSize: number) => void {
  const dropped = throttled(5000, (suppressed, detail) => log.info({ ...(detail as object), suppressed }, 'message not sent: larger than the client\'s Maximum Packet Size'))
  return (client, packet, maximumPacketSize) => dropped({ clientId: client.id, cmd: packet.cmd, topic: packet.topic, maximumPacketSize })
}

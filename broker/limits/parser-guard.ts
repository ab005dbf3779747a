import type { AedesOptions, Client } from 'aedes'
import { errorMessage, isMqfnError, mqfnError, type MqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import { endConnection } from '../hooks/end-connection.ts'
import { REASON } from '../mqtt5/reason-codes.ts'

type Refusal = MqfnError & { returnCode?: number; reasonCode?: number }
/** An error of mqtt-packet's strict checks (patches/mqtt-packet+…+001+strict.patch). */
type Violation = Error & { protocolViolation?: true; returnCode?: number }

/** Packets only a server sends; aedes drops the connection on them without a word. */
const SERVER_PACKETS = new Set(['connack', 'suback', 'unsuback', 'pingresp'])
/** CONNACK, return code 1: unacceptable protocol level [MQTT-3.2.2.3]. */
const CONNACK_BAD_LEVEL = Buffer.from([0x20, 0x02, 0x00, 0x01])

/** MQTT 5: 0x81 Malformed Packet for bytes that do not parse, 0x82 Protocol Error for a packet out of place. */
function protocolError(detail: string, reasonCode: number = REASON.MALFORMED_PACKET): Refusal {
  return Object.assign(mqfnError('MQFN_ERR_PROTOCOL', detail), { reasonCode })
}

export interface PacketGuard {
  /** For `new Aedes()` (aedes patch 012, mqtt-packet patch 001). */
  readonly aedesOptions: Required<Pick<AedesOptions, 'parserOptions' | 'checkPacket' | 'packetError'>>
}

/**
 * Bad input ends that connection with an error that says what was wrong, and never
 * the process:
 * - anything the parser or a synchronous aedes handler throws on crafted bytes is
 *   caught (an exception there would be uncaught: it runs in a socket callback);
 * - strings must be well-formed UTF-8 without U+0000 [MQTT-1.5.3-1/2], and a protocol
 *   level other than 3, 4 or 5 gets CONNACK 1 before the close [MQTT-3.1.2-2]: the
 *   strict parser checks both (mqtt-packet decodes strings leniently otherwise);
 * - the first packet must be CONNECT, and only the first [MQTT-3.1.0-1/2], and a
 *   client may not send server packets.
 * An MQTT 5 client with a session gets DISCONNECT 0x81 or 0x82 before the close
 * [MQTT-4.13.1-1]. Any other parser error closes the connection as aedes does.
 */
export function createPacketGuard(log: Logger): PacketGuard {
  const connects = new WeakMap<Client, number>()

  const fail = (client: Client & { connackSent?: boolean }, err: Refusal): void => {
    if (err.returnCode === 1 && !client.connackSent) {
      const conn = client.conn as unknown as { write(buf: Buffer, cb: (err?: Error | null) => void): boolean }
      conn.write(CONNACK_BAD_LEVEL, () => client.emit('error', err))
      return
    }
    endConnection(client, err, err.reasonCode ?? REASON.MALFORMED_PACKET)
  }

  return {
    aedesOptions: {
      parserOptions: { strict: true },
      checkPacket(client, packet) {
        if (packet.cmd === 'connect') {
          const n = (connects.get(client) ?? 0) + 1
          connects.set(client, n)
          return n > 1 ? protocolError('a second CONNECT on the same connection [MQTT-3.1.0-2]', REASON.PROTOCOL_ERROR) : null
        }
        if (!connects.has(client)) return protocolError(`${packet.cmd.toUpperCase()} before CONNECT; the first packet must be CONNECT [MQTT-3.1.0-1]`)
        if (SERVER_PACKETS.has(packet.cmd)) return protocolError(`${packet.cmd.toUpperCase()} is a packet only a server sends`, REASON.PROTOCOL_ERROR)
        return null
      },
      packetError(client, err: Violation, thrown) {
        if (isMqfnError(err)) return fail(client, err)
        if (err.protocolViolation) return fail(client, Object.assign(protocolError(err.message), err.returnCode !== undefined ? { returnCode: err.returnCode } : {}))
        if (thrown) {
          log.warn({ err, clientId: client.id }, 'a packet made the MQTT parser or a handler throw; closing that connection')
          return fail(client, protocolError(`malformed packet (${errorMessage(err)})`))
        }
        // mqtt-packet's own errors (header flags, lengths): closed as aedes closes them
        client.emit('error', err)
      },
    },
  }
}

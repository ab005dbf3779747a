import { isUtf8 } from 'node:buffer'
import type { EventEmitter } from 'node:events'
import type { Client } from 'aedes'
import { errorMessage, isMqfnError, mqfnError, type MqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import { endConnection } from '../hooks/end-connection.ts'
import { REASON } from '../mqtt5/reason-codes.ts'

/** The parts of mqtt-packet's Parser (parser.js) the guard reaches into. */
interface ParserInternals extends EventEmitter {
  parse(buf: Buffer): number
  _parseString(...args: unknown[]): string | null
  _parseConnect(): unknown
  _list: { length: number; readUInt8(offset: number): number; readUInt16BE(offset: number): number; slice(start: number, end: number): Buffer; toString(encoding: 'latin1', start: number, end: number): string }
  _pos: number
}

type GuardedClient = Client & { _parser: ParserInternals; connackSent?: boolean }
type Refusal = MqfnError & { returnCode?: number; reasonCode?: number }

/** Packets only a server sends; aedes drops the connection on them without a word. */
const SERVER_PACKETS = new Set(['connack', 'suback', 'unsuback', 'pingresp'])
/** CONNACK, return code 1: unacceptable protocol level [MQTT-3.2.2.3]. */
const CONNACK_BAD_LEVEL = Buffer.from([0x20, 0x02, 0x00, 0x01])

/** MQTT 5: 0x81 Malformed Packet for bytes that do not parse, 0x82 Protocol Error for a packet out of place. */
function protocolError(detail: string, reasonCode: number = REASON.MALFORMED_PACKET): Refusal {
  return Object.assign(mqfnError('MQFN_ERR_PROTOCOL', detail), { reasonCode })
}

/**
 * Wraps one client's mqtt-packet parser so bad input ends that connection with an
 * error that says what was wrong, and never the process:
 * - anything the parser or a synchronous aedes handler throws on crafted bytes is
 *   caught (an exception there would be uncaught: it runs in a socket callback);
 * - strings must be well-formed UTF-8 without U+0000 [MQTT-1.5.3-1/2]; the parser
 *   decodes leniently, turning bad bytes into U+FFFD;
 * - a protocol level other than 3, 4 or 5 gets
 *   CONNACK 1 before the close [MQTT-3.1.2-2], where the parser would just fail;
 * - the first packet must be CONNECT, and only the first [MQTT-3.1.0-1/2], and a
 *   client may not send server packets.
 * An MQTT 5 client with a session gets DISCONNECT 0x81 or 0x82 before the close
 * [MQTT-4.13.1-1].
 */
export function guardParser(client: GuardedClient, log: Logger): void {
  const parser = client._parser
  const conn = client.conn as unknown as { write(buf: Buffer, cb: (err?: Error | null) => void): boolean }
  let failed = false

  const fail = (err: Refusal): void => {
    if (failed) return
    failed = true
    if (err.returnCode === 1 && !client.connackSent) {
      conn.write(CONNACK_BAD_LEVEL, () => client.emit('error', err))
      return
    }
    endConnection(client, err, err.reasonCode ?? REASON.MALFORMED_PACKET)
  }

  const parse = parser.parse
  parser.parse = function guardedParse(buf) {
    if (failed) return 0
    try {
      return parse.call(parser, buf)
    } catch (err) {
      if (!isMqfnError(err)) {
        log.warn({ err, clientId: client.id }, 'a packet made the MQTT parser or a handler throw; closing that connection')
        fail(protocolError(`malformed packet (${errorMessage(err)})`))
      } else {
        fail(err)
      }
      return 0
    }
  }

  const parseString = parser._parseString
  parser._parseString = function strictString(this: ParserInternals, ...args) {
    const start = this._pos
    const s = parseString.apply(this, args)
    if (s !== null && (s.includes('\uFFFD') || s.includes('\u0000'))) {
      // U+FFFD may also have been sent as such, well-formed: look at the bytes
      if (!isUtf8(this._list.slice(start + 2, this._pos))) throw protocolError('a string (topic, client id, username) is not well-formed UTF-8 [MQTT-1.5.3-1]')
      if (s.includes('\u0000')) throw protocolError('a string (topic, client id, username) contains U+0000 [MQTT-1.5.3-2]')
    }
    return s
  }

  const parseConnect = parser._parseConnect
  parser._parseConnect = function checkedConnect(this: ParserInternals) {
    const list = this._list
    if (list.length >= 2) {
      const nameLength = list.readUInt16BE(0)
      if (list.length >= 3 + nameLength) {
        const name = list.toString('latin1', 2, 2 + nameLength)
        if (name !== 'MQTT' && name !== 'MQIsdp') {
          throw protocolError(`protocol name ${JSON.stringify(name.slice(0, 32))} is neither "MQTT" nor "MQIsdp" [MQTT-3.1.2-1]`)
        }
        // the high bit marks a bridge (mqtt-packet's bridgeMode)
        const level = list.readUInt8(2 + nameLength) & 0x7f
        if (level !== 3 && level !== 4 && level !== 5) {
          throw Object.assign(protocolError(`unacceptable protocol level ${level}; this broker speaks MQTT 3.1 (3), 3.1.1 (4) and 5.0 (5) [MQTT-3.1.2-2]`), { returnCode: 1 })
        }
      }
    }
    return parseConnect.call(this)
  }

  // aedes' own listener (enqueue in lib/client.js) runs after the order checks
  const aedesListeners = parser.listeners('packet') as ((this: ParserInternals, packet: { cmd: string }) => void)[]
  parser.removeAllListeners('packet')
  let connects = 0
  parser.on('packet', function checkOrder(this: ParserInternals, packet: { cmd: string }) {
    if (packet.cmd === 'connect') {
      if (++connects > 1) throw protocolError('a second CONNECT on the same connection [MQTT-3.1.0-2]', REASON.PROTOCOL_ERROR)
    } else if (connects === 0) {
      throw protocolError(`${packet.cmd.toUpperCase()} before CONNECT; the first packet must be CONNECT [MQTT-3.1.0-1]`)
    } else if (SERVER_PACKETS.has(packet.cmd)) {
      throw protocolError(`${packet.cmd.toUpperCase()} is a packet only a server sends`, REASON.PROTOCOL_ERROR)
    }
    for (const listener of aedesListeners) listener.call(this, packet)
  })
}

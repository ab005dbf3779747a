import type { Readable } from 'node:stream'
import type { Client } from 'aedes'
import { mqfnError, type MqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import { TokenBucket } from './token-bucket.ts'
import { ByteBudget } from '../flow/byte-budget.ts'
import { endConnection } from '../hooks/end-connection.ts'
import { REASON } from '../mqtt5/reason-codes.ts'

const PACKET_NAMES = ['reserved', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH']
const PUBLISH = 3
const HEADER = 0
const LENGTH = 1
const BODY = 2

export interface ReadGateSettings {
  maxPacketSize: number
  /** PUBLISH packets per second; 0 for no limit. */
  publishRatePerClient: number
  /** Bytes of PUBLISH packets per second; 0 for no limit. */
  publishBytesPerClient: number
}

/**
 * Stands between a connection and aedes' parser, which buffers a packet whole before
 * looking at it. aedes takes the bytes it parses from its `readFrom` option (aedes
 * patch 011) instead of `conn.read()`; a gate follows packet boundaries in those bytes
 * (fixed header and remaining length only, no parsing) and
 * - refuses a packet larger than maxPacketSize as soon as its fixed header arrives,
 *   so it is never buffered (and a remaining length longer than 4 bytes, which the
 *   parser would wait on);
 * - holds back the bytes from the first PUBLISH over publishRatePerClient, or past
 *   publishBytesPerClient (the bytes of the PUBLISH packets before it), until the
 *   rate allows it. Meanwhile aedes gets nothing to read, the socket's buffer fills
 *   and TCP stops the sender: backpressure, with nothing read dropped.
 * A violation ends the connection; an MQTT 5 client is told why first: DISCONNECT
 * 0x95 Packet too large [MQTT-3.2.2-15] (the limit is its CONNACK's Maximum Packet
 * Size, broker/mqtt5/options.ts) or 0x81 Malformed Packet.
 * The rate limits never end a connection, so 0x96 Message rate too high is not sent:
 * the sender is slowed instead, and nothing it sent is lost.
 */
export class ReadGates {
  private readonly gates = new WeakMap<Client, () => Buffer | null>()

  constructor(private readonly settings: ReadGateSettings, private readonly log: Logger) {}

  /** aedes' `readFrom` option: a gated client's next bytes, or its socket's. */
  readonly readFrom = (client: Client): Buffer | null => {
    const gate = this.gates.get(client)
    return gate ? gate() : ((client.conn as unknown as Readable).read() as Buffer | null)
  }

  /** Gates a new connection's reads from now on. */
  attach(client: Client): void {
    this.gates.set(client, gateReads(client, this.settings, this.log))
  }
}

/** One connection's gate: returns what aedes' parser may read now. */
function gateReads(client: Client, settings: ReadGateSettings, log: Logger): () => Buffer | null {
  const conn = client.conn as unknown as Readable
  const limiter = settings.publishRatePerClient > 0 ? new TokenBucket(settings.publishRatePerClient) : undefined
  const bytes = settings.publishBytesPerClient > 0 ? new ByteBudget(settings.publishBytesPerClient) : undefined

  // where the byte stream is: in a fixed header, its remaining length, or a body
  let phase = HEADER
  let type = 0
  let length = 0
  let lengthBytes = 0
  let multiplier = 1
  let bodyLeft = 0

  let held: Buffer | null = null
  let waiting: NodeJS.Timeout | undefined
  let aedesWaits = false
  let failed = false
  let limitedBy: 'publishRatePerClient' | 'publishBytesPerClient' = 'publishRatePerClient'
  let pauses = 0
  let pausedSince = 0
  let pausedMs = 0

  /** How far `chunk` may go to aedes now; throws on a violation. */
  function scan(chunk: Buffer): number {
    let i = 0
    while (i < chunk.length) {
      if (phase === HEADER) {
        const t = (chunk[i] as number) >> 4
        if (t === PUBLISH && bytes && !bytes.open()) {
          limitedBy = 'publishBytesPerClient'
          return i
        }
        if (t === PUBLISH && limiter && !limiter.take()) {
          limitedBy = 'publishRatePerClient'
          return i
        }
        type = t
        length = 0
        lengthBytes = 0
        multiplier = 1
        phase = LENGTH
        i++
      } else if (phase === LENGTH) {
        const b = chunk[i++] as number
        length += (b & 0x7f) * multiplier
        multiplier *= 128
        lengthBytes++
        if (b & 0x80) {
          if (lengthBytes === 4) throw mqfnError('MQFN_ERR_PROTOCOL', `the remaining length of a ${PACKET_NAMES[type]} packet runs past 4 bytes [MQTT-2.2.3]`)
          continue
        }
        const size = 1 + lengthBytes + length
        if (size > settings.maxPacketSize) {
          throw mqfnError('MQFN_ERR_LIMIT_EXCEEDED', 'maxPacketSize', `a ${PACKET_NAMES[type]} packet of ${size} bytes; the limit is ${settings.maxPacketSize} (MQFN_MAX_PACKET_SIZE)`)
        }
        if (type === PUBLISH) bytes?.charge(size)
        bodyLeft = length
        phase = length === 0 ? HEADER : BODY
      } else {
        const n = Math.min(bodyLeft, chunk.length - i)
        i += n
        bodyLeft -= n
        if (bodyLeft === 0) phase = HEADER
      }
    }
    return i
  }

  function pause(): void {
    pauses++
    pausedSince = performance.now()
    if (pauses === 1) log.warn({ clientId: client.id, limit: limitedBy, [limitedBy]: settings[limitedBy] }, 'publish rate limit reached: reading from this client paused until the rate allows')
    const wait = limitedBy === 'publishBytesPerClient' ? bytes?.msUntilOpen() : limiter?.msUntilNext()
    waiting = setTimeout(resume, Math.max(1, wait ?? 1))
  }

  function resume(): void {
    waiting = undefined
    pausedMs += performance.now() - pausedSince
    // aedes asked for bytes while we held them back and now waits for a 'readable'
    // that will not come (the bytes are here, not in the socket): ask it to read again
    if (aedesWaits && !client.closed) {
      aedesWaits = false
      client.resumeRead()
    }
  }

  function fail(err: MqfnError): null {
    failed = true
    held = null
    endConnection(client, err, err.code === 'MQFN_ERR_LIMIT_EXCEEDED' ? REASON.PACKET_TOO_LARGE : REASON.MALFORMED_PACKET)
    return null
  }

  const read = (): Buffer | null => conn.read() as Buffer | null

  conn.once('close', () => {
    if (waiting) clearTimeout(waiting)
    waiting = undefined
    held = null
    if (pauses > 0) {
      log.info({ clientId: client.id, pauses, pausedMs: Math.round(pausedMs) }, 'publish rate limit paused this connection')
    }
  })

  return function gatedRead(): Buffer | null {
    if (failed) return null
    if (waiting) {
      aedesWaits = true
      return null
    }
    // held bytes go first, and alone: reading the socket now would let 'end' close the
    // client before they are handled
    let chunk: Buffer | null
    const fromHeld = held !== null
    if (held) {
      chunk = held
      held = null
    } else {
      chunk = read()
      if (chunk === null) return null
    }
    let upTo: number
    try {
      upTo = scan(chunk)
      // Held bytes that end inside a packet: its rest is in the socket's buffer, and no
      // 'readable' comes for bytes already buffered, nor a next read from aedes, which
      // reads again only after a whole packet. Take them now.
      if (fromHeld && upTo === chunk.length && phase !== HEADER) {
        const more = read()
        if (more) {
          const moreUpTo = scan(more)
          upTo = chunk.length + moreUpTo
          chunk = Buffer.concat([chunk, more])
        }
      }
    } catch (err) {
      return fail(err as MqfnError)
    }
    if (upTo === chunk.length) return chunk
    held = chunk.subarray(upTo)
    pause()
    if (upTo === 0) {
      aedesWaits = true
      return null
    }
    return chunk.subarray(0, upTo)
  }
}

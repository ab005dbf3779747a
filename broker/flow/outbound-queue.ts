import type { Writable } from 'node:stream'
import { Fifo } from './fifo.ts'

/** The bounds of one client's outbound queue (broker/config.ts "Flow"). */
export interface OutboundBounds {
  maxInflight: number
  maxQueuedMessages: number
  maxQueuedBytes: number
  overflow: 'drop-oldest' | 'disconnect'
}

/** Why a message meant for a client was not sent to it; a label of mqfn_broker_messages_dropped_total. */
export type DropReason = 'queue-full-qos0' | 'queue-full-oldest' | 'queue-full-disconnect'

/** What the queue needs of an aedes client. */
export interface OutboundClient {
  readonly conn: unknown
  readonly closed: boolean
  /** MQTT 5 Receive Maximum from CONNECT (aedes lib/handlers/connect.js); 65535 when absent. */
  readonly receiveMaximum?: number
}

export interface OutboundEvents {
  dropped(reason: DropReason, count: number): void
  /** The queue is past its bounds and the policy is `disconnect`: close the client. */
  overflow(): void
}

/** What aedes' deliver functions hand over (patch aedes+2.0.0-beta.1+003+flow-outbound-queue). */
interface Entry {
  seq: number
  qos: number
  bytes: number
  send: () => void
  done: (() => void) | undefined
}

interface QueuedPacket {
  qos?: number
  topic?: string
  payload?: Buffer | string
}

const RECEIVE_MAXIMUM_DEFAULT = 65535

/**
 * One client's outbound queue. aedes' deliver functions push each packet here and get
 * their callback at once, so the emitter (mqemitter, which waits for every subscriber's
 * callback before it frees a slot) never waits for this client's socket. Packets leave
 * in order while the socket takes them (no 'drain' pending) and, for QoS 1/2, while
 * fewer than the in-flight bound are unacknowledged [MQTT-4.9.0-2]. Past the queue's
 * bounds QoS 0 goes first (the newest is not queued, or the oldest queued one makes
 * room), then the overflow policy applies to QoS 1/2.
 *
 * Messages of a persistent session's store (aedes' emptyQueue on CONNECT) are never
 * dropped here: the store holds them until acknowledged, and its own bounds apply.
 */
export class OutboundQueue {
  private readonly qos0 = new Fifo<Entry>()
  private readonly qos12 = new Fifo<Entry>()
  private bytes = 0
  private seq = 0
  private inflight = 0
  private waitingDrain = false
  private closed = false
  private overflowed = false
  private readonly conn: Writable
  private readonly onDrain = (): void => {
    this.waitingDrain = false
    this.pump()
  }

  constructor(private readonly client: OutboundClient, private readonly bounds: Readonly<OutboundBounds>, private readonly events: OutboundEvents) {
    this.conn = client.conn as Writable
  }

  get queued(): { messages: number; bytes: number; inflight: number } {
    return { messages: this.qos0.length + this.qos12.length, bytes: this.bytes, inflight: this.inflight }
  }

  /**
   * aedes hands over a packet: `send` writes it (taking a message id for QoS 1/2);
   * `done` is the emitter's callback, run now, or, for a `stored` packet, the session
   * store's stream callback, run once the packet is sent (the stream then reads the next).
   */
  push(packet: QueuedPacket, send: () => void, done: () => void, stored: boolean): void {
    if (this.closed || this.overflowed) {
      done()
      return
    }
    const qos = packet.qos ?? 0
    const entry: Entry = { seq: this.seq++, qos, bytes: sizeOf(packet), send, done: stored ? done : undefined }
    if (this.qos0.length + this.qos12.length === 0 && this.canSend(qos)) {
      this.sendEntry(entry)
    } else {
      if (!stored && !this.admit(entry)) {
        done()
        return
      }
      this.bytes += entry.bytes
      ;(qos === 0 ? this.qos0 : this.qos12).push(entry)
      this.waitForDrain()
    }
    if (!stored) done()
  }

  /** A PUBACK, PUBCOMP or failed PUBREC ended a QoS 1/2 delivery [MQTT-4.9.0-3]. */
  acked(): void {
    if (this.inflight > 0) this.inflight--
    this.pump()
  }

  /** The connection is closing: queued packets are let go (a persistent session's store keeps its QoS 1/2 ones). */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.conn.removeListener('drain', this.onDrain)
    const stored: Entry[] = []
    for (const fifo of [this.qos0, this.qos12]) {
      for (let e = fifo.shift(); e; e = fifo.shift()) if (e.done) stored.push(e)
    }
    this.bytes = 0
    for (const e of stored) e.done?.()
  }

  /** Makes room for `entry` within the bounds, or says it cannot be queued. */
  private admit(entry: Entry): boolean {
    if (this.fits(entry)) return true
    // QoS 0 first [the "QoS 0 dropped first", as Mosquitto and EMQX do]
    if (entry.qos === 0) {
      this.events.dropped('queue-full-qos0', 1)
      return false
    }
    let qos0Dropped = 0
    while (!this.fits(entry) && this.qos0.length > 0) {
      this.bytes -= (this.qos0.shift() as Entry).bytes
      qos0Dropped++
    }
    if (qos0Dropped > 0) this.events.dropped('queue-full-qos0', qos0Dropped)
    if (this.fits(entry)) return true
    if (this.bounds.overflow === 'disconnect') {
      this.overflowed = true
      this.events.dropped('queue-full-disconnect', this.qos12.length + 1)
      this.events.overflow()
      return false
    }
    let dropped = 0
    while (!this.fits(entry) && this.qos12.length > 0) {
      const oldest = this.qos12.peek() as Entry
      // a stored packet's stream waits for it: never dropped
      if (oldest.done) break
      this.qos12.shift()
      this.bytes -= oldest.bytes
      dropped++
    }
    if (dropped > 0) this.events.dropped('queue-full-oldest', dropped)
    if (this.fits(entry)) return true
    this.events.dropped('queue-full-oldest', 1)
    return false
  }

  private fits(entry: Entry): boolean {
    return this.qos0.length + this.qos12.length < this.bounds.maxQueuedMessages && this.bytes + entry.bytes <= this.bounds.maxQueuedBytes
  }

  private canSend(qos: number): boolean {
    if (this.conn.writableNeedDrain) return false
    return qos === 0 || this.inflight < this.window()
  }

  /** The in-flight bound: ours, or the client's Receive Maximum when lower [MQTT-3.3.4-7]. */
  private window(): number {
    return Math.min(this.bounds.maxInflight, this.client.receiveMaximum ?? RECEIVE_MAXIMUM_DEFAULT)
  }

  private sendEntry(entry: Entry): void {
    if (entry.qos > 0) this.inflight++
    entry.send()
    entry.done?.()
  }

  /** Sends queued packets in arrival order while the socket and the in-flight window allow. */
  private pump(): void {
    while (!this.closed) {
      const a = this.qos0.peek()
      const b = this.qos12.peek()
      const next = a && (!b || a.seq < b.seq) ? a : b
      if (!next) return
      if (!this.canSend(next.qos)) {
        this.waitForDrain()
        return
      }
      ;(next === a ? this.qos0 : this.qos12).shift()
      this.bytes -= next.bytes
      this.sendEntry(next)
    }
  }

  private waitForDrain(): void {
    if (this.waitingDrain || !this.conn.writableNeedDrain) return
    this.waitingDrain = true
    this.conn.once('drain', this.onDrain)
  }
}

function sizeOf(packet: QueuedPacket): number {
  const payload = packet.payload
  const bytes = payload === undefined ? 0 : typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
  return bytes + (packet.topic?.length ?? 0)
}

import type { Aedes, Client, PublishPacket } from 'aedes'

interface IncomingStore {
  incomingGetPacket(client: Client, packet: { messageId?: number }): Promise<unknown>
}

type Verdict = (resend: boolean) => void

/**
 * QoS 2 exactly once into the event log [MQTT-4.3.3-2]: aedes keeps a QoS 2 PUBLISH in
 * its persistence from before it is forwarded until PUBREL, and answers a PUBLISH
 * whose packet id it holds with PUBREC only. That PUBLISH is the resend of a message
 * already captured, whether it comes on the same connection, after a reconnect, or
 * (Redis persistence) through another broker: it must not be captured again.
 *
 * A copy that arrives while the first is still being captured (both in one TCP chunk:
 * aedes handles a chunk's packets side by side) waits until the first is stored and
 * forwarded; aedes then finds it in its store and only acknowledges it. Letting it go
 * on earlier would have aedes store it first, and then treat the original as the copy.
 */
export class Qos2Once {
  /** Packet ids of this connection between capture and forwarding, with the copies waiting on them. */
  private readonly pending = new WeakMap<Client, Map<number, Verdict[]>>()

  constructor(private readonly aedes: Aedes) {
    // aedes emits 'publish' once the message was stored and forwarded (aedes.js callPublished)
    aedes.on('publish', (packet: PublishPacket & { messageId?: number }, client: Client | null) => {
      if (client && packet.qos === 2 && packet.messageId !== undefined) this.settle(client, packet.messageId, true)
    })
  }

  /**
   * Calls back with true when this QoS 2 PUBLISH is a resend of one captured and not yet
   * released; with false when it is new, and then remembers it until aedes forwarded it.
   */
  resend(client: Client, packet: PublishPacket & { messageId?: number }, done: Verdict): void {
    const id = packet.messageId
    if (id === undefined) return done(false)
    let ids = this.pending.get(client)
    const waiting = ids?.get(id)
    if (waiting) {
      waiting.push(done)
      return
    }
    if (!ids) this.pending.set(client, (ids = new Map()))
    ids.set(id, [])
    const store = (this.aedes as Aedes & { persistence: IncomingStore }).persistence
    store.incomingGetPacket(client, packet).then(
      () => {
        this.settle(client, id, true)
        done(true)
      },
      () => done(false),
    )
  }

  /** The capture failed or the publish was refused: a waiting copy is then handled as new. */
  forget(client: Client, packet: { messageId?: number }): void {
    if (packet.messageId !== undefined) this.settle(client, packet.messageId, false)
  }

  private settle(client: Client, id: number, stored: boolean): void {
    const ids = this.pending.get(client)
    const waiting = ids?.get(id)
    if (!waiting) return
    ids?.delete(id)
    for (const verdict of waiting) verdict(stored)
  }
}

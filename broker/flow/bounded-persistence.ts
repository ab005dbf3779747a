import type { AedesOptions, Client } from 'aedes'
import type { SessionLedger } from './session-ledger.ts'

type AedesPersistence = NonNullable<AedesOptions['persistence']>

interface StoredPacket {
  topic?: string
  payload?: Buffer | string
}

interface Sub {
  clientId: string
}

interface QueueMethods {
  outgoingEnqueue(sub: Sub, packet: StoredPacket): Promise<void>
  outgoingEnqueueCombi(subs: Sub[], packet: StoredPacket): Promise<void>
  outgoingClearMessageId(client: Pick<Client, 'id'>, packet: unknown): Promise<StoredPacket | undefined>
}

/**
 * aedes' session store with a bound per session: before a QoS 1/2 message is queued for
 * a persistent session (connected or not: aedes queues for both, aedes.js
 * enqueueOffline), the ledger counts it in, and a session at its bound does not get it —
 * the newest is refused, as Mosquitto's max_queued_messages does, since the oldest may
 * be in flight already. A message leaving the store (acknowledged, expired, emptied)
 * is counted out. The store itself is untouched: this object stands in front of it
 * and forwards everything else.
 */
export function boundedPersistence(inner: AedesPersistence, ledger: SessionLedger, refused: (clientId: string) => void): AedesPersistence {
  // the store's own methods, taken once: whatever is later assigned on the returned
  // object (broker/capture/wire.ts wraps outgoingClearMessageId) wraps ours, not theirs
  const methods = inner as unknown as QueueMethods
  const store: QueueMethods = {
    outgoingEnqueue: methods.outgoingEnqueue.bind(inner),
    outgoingEnqueueCombi: methods.outgoingEnqueueCombi.bind(inner),
    outgoingClearMessageId: methods.outgoingClearMessageId.bind(inner),
  }
  const admitted = async (subs: Sub[], packet: StoredPacket): Promise<Sub[]> => {
    const bytes = sizeOf(packet)
    const verdicts = await Promise.all(subs.map((s) => ledger.admit(s.clientId, bytes)))
    return subs.filter((s, i) => {
      if (!verdicts[i]) refused(s.clientId)
      return verdicts[i]
    })
  }
  const own: QueueMethods = {
    async outgoingEnqueue(sub, packet) {
      const [kept] = await admitted([sub], packet)
      if (kept) await store.outgoingEnqueue(kept, packet)
    },
    async outgoingEnqueueCombi(subs, packet) {
      if (!subs || subs.length === 0) return
      const kept = await admitted(subs, packet)
      if (kept.length > 0) await store.outgoingEnqueueCombi(kept, packet)
    },
    async outgoingClearMessageId(client, packet) {
      const removed = await store.outgoingClearMessageId(client, packet)
      if (removed) ledger.release(client.id, sizeOf(removed))
      return removed
    },
  }
  const isOwn = (prop: string | symbol): prop is keyof QueueMethods => typeof prop === 'string' && Object.hasOwn(own, prop)
  return new Proxy(inner, {
    get(target, prop) {
      if (isOwn(prop)) return own[prop]
      const value: unknown = Reflect.get(target, prop, target)
      // the stores keep their state in private fields: their methods must run on the store itself
      return typeof value === 'function' ? value.bind(target) : value
    },
    set(target, prop, value: unknown) {
      if (isOwn(prop)) {
        ;(own as unknown as Record<string, unknown>)[prop] = value
        return true
      }
      return Reflect.set(target, prop, value, target)
    },
  })
}

export function sizeOf(packet: StoredPacket): number {
  const payload = packet.payload
  const bytes = payload === undefined ? 0 : typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
  return bytes + (packet.topic?.length ?? 0)
}

import { promisify } from 'node:util'
import type { Aedes, Client, PublishPacket } from 'aedes'
import type { Pipeline } from './pipeline.ts'

type StoredWill = PublishPacket & { clientId: string; brokerId: string; properties?: { willDelayInterval?: number } }

/** The parts of aedes' persistence API this reads (aedes-persistence, aedes-persistence-redis). */
interface WillStore {
  streamWill(brokers: Record<string, number>): AsyncIterable<StoredWill>
  getWill(client: { id: string }): Promise<StoredWill | null | undefined>
  delWill(client: { id: string; brokerId: string }): Promise<unknown>
}

/** Node fires a timeout above this at once; a Will Delay Interval may be up to 2^32-1 s [MQTT-3.1.3.2.2]. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

interface LongTimer { clear(): void }

/** A timer for any delay: re-armed in steps Node can hold (as aedes' own armLongTimer, which it does not export). */
function after(ms: number, fire: () => void): LongTimer {
  let timer: NodeJS.Timeout
  const arm = (left: number): void => {
    const step = Math.min(left, MAX_TIMEOUT_MS)
    timer = setTimeout(() => (left > step ? arm(left - step) : fire()), step).unref()
  }
  arm(ms)
  return { clear: () => clearTimeout(timer) }
}

type Authorize = (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => void
type Publish = (packet: PublishPacket, done: (error?: Error | null) => void) => void

/**
 * Wills this broker id stored before it started, which aedes would never publish: its
 * will check (aedes.js `_clearWills`) skips the wills of live brokers, and this id is
 * live again. A broker stopped with delayed wills pending (aedes leaves them stored),
 * or killed while its clients were connected, leaves them in the persistence (Redis;
 * memory persistence keeps nothing across a restart). Run once the persistence is
 * set up and before the listeners accept: a will without a Will Delay Interval is
 * published at once (its connection ended with the broker); a delayed one after its
 * whole delay counted from this start, as the time already waited is not stored —
 * late, never early [MQTT-3.1.3-9]. Its client connecting again first, here or on
 * another broker of the cluster (which removes the stored will, cluster-timers.ts),
 * cancels it. Cost at start: one pass over the cluster's stored wills.
 */
export async function publishPreviousWills(aedes: Aedes, p: Pipeline): Promise<void> {
  const store = (aedes as unknown as { persistence: WillStore }).persistence
  const authorize = promisify((aedes as unknown as { authorizePublish: Authorize }).authorizePublish).bind(aedes) as (client: Client | null, packet: PublishPacket) => Promise<void>
  const publish = promisify((aedes.publish as Publish).bind(aedes))
  const pending = new Map<string, LongTimer>()

  const fire = async (clientId: string): Promise<void> => {
    pending.delete(clientId)
    if (clientId in aedes.clients) return
    // still stored under this broker id: not replaced or removed by a reconnect meanwhile
    const will = await store.getWill({ id: clientId })
    if (!will || will.brokerId !== aedes.id) return
    // as aedes' own will check: the ACL of the time decides, with no client
    await authorize(null, will)
    await publish(will)
    await store.delWill({ id: clientId, brokerId: aedes.id })
    p.log.info({ clientId, topic: will.topic }, 'will stored before this broker started: published')
  }
  const fireSafely = (clientId: string): Promise<void> =>
    fire(clientId).catch((err: unknown) => p.log.warn({ err, clientId }, 'a will stored before this broker started was not published'))

  const immediate: string[] = []
  for await (const will of store.streamWill({})) {
    if (will.brokerId !== aedes.id || will.clientId in aedes.clients || pending.has(will.clientId)) continue
    const delay = will.properties?.willDelayInterval ?? 0
    if (delay > 0) pending.set(will.clientId, after(delay * 1000, () => void fireSafely(will.clientId)))
    else immediate.push(will.clientId)
  }
  await Promise.all(immediate.map(fireSafely))
  if (pending.size === 0) return
  p.log.info({ wills: pending.size }, 'delayed wills stored before this broker started: published after their delay unless their clients return')
  const cancel = (client: Client): void => {
    pending.get(client.id)?.clear()
    pending.delete(client.id)
  }
  aedes.on('client', cancel)
  aedes.once('closed', () => {
    for (const timer of pending.values()) timer.clear()
    pending.clear()
    aedes.removeListener('client', cancel)
  })
}

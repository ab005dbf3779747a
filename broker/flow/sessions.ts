import type { AedesOptions, Client } from 'aedes'
import memoryPersistence from 'aedes-persistence'
import type { Redis } from 'ioredis'
import { createEpochClock } from '../../common/ids.ts'
import type { Logger } from '../../common/logger.ts'
import type { Capture } from '../capture/capture.ts'
import type { BrokerConfig } from '../config.ts'
import { boundedPersistence } from './bounded-persistence.ts'
import type { DropReport } from './drop-report.ts'
import { MemoryLedger, RedisLedger, type SessionLedger } from './session-ledger.ts'

export type SessionSettings = Pick<BrokerConfig, 'persistence' | 'prefix' | 'maxOfflineMessages' | 'maxOfflineBytes' | 'sessionExpirySeconds'>

type AedesPersistence = NonNullable<AedesOptions['persistence']>

interface WipeableStore {
  cleanSubscriptions(client: { id: string }): Promise<unknown>
  outgoingStream(client: { id: string }): AsyncIterable<{ messageId?: number }>
  outgoingUpdate(client: { id: string }, packet: unknown): Promise<unknown>
  outgoingClearMessageId(client: { id: string }, packet: unknown): Promise<unknown>
}

export interface Sessions {
  /** aedes' session store, bounded per session. */
  readonly persistence: AedesPersistence
  /** MQTT 5: a client's Session Expiry Interval is capped at sessionExpirySeconds (aedes clamps it). */
  readonly aedesOptions: { sessionExpiryIntervalLimit?: number }
  /** aedes' `client` event (broker/hooks/stored-session.ts): the session is connected. */
  connected(client: Client): void
  /** aedes' `clientDisconnect` event: a persistent session's offline time starts. */
  disconnected(client: Client): void
  close(): void
}

/**
 * Persistent sessions bounded and expiring (docs/security.md "Limits"): each session's
 * stored queue holds at most maxOfflineMessages / maxOfflineBytes, and a session not
 * connected for sessionExpirySeconds is removed with its queue and subscriptions, with a
 * `clientDisconnected` event of reason `session-expired` — as Mosquitto's
 * persistent_client_expiration, for MQTT 3.1.1 sessions too. An MQTT 5 client's own
 * Session Expiry Interval is kept by aedes when shorter, capped at this when longer.
 */
/** @param forget drops an expired session from the record CONNACK's Session Present is read from (broker/cluster/stored-sessions.ts) */
export function createSessions(settings: Readonly<SessionSettings>, redis: Redis, cap: Capture, report: DropReport, log: Logger, store?: AedesPersistence, forget: (clientId: string) => void = () => {}): Sessions {
  const bounds = { maxMessages: settings.maxOfflineMessages, maxBytes: settings.maxOfflineBytes }
  const ledger: SessionLedger = settings.persistence === 'redis' ? new RedisLedger(redis, settings.prefix, bounds) : new MemoryLedger(bounds)
  const refusedBy = new Map<string, number>()
  let summary: NodeJS.Timeout | undefined
  const refused = (clientId: string) => {
    report.droppedOffline('offline-queue-full', 1)
    refusedBy.set(clientId, (refusedBy.get(clientId) ?? 0) + 1)
    // one line a second for all sessions, not one per message
    summary ??= setTimeout(() => {
      summary = undefined
      log.warn({ sessions: Object.fromEntries(refusedBy), maxOfflineMessages: bounds.maxMessages, maxOfflineBytes: bounds.maxBytes }, 'messages not queued: these sessions are at their queue bound')
      refusedBy.clear()
    }, 1000).unref()
  }
  const persistence = boundedPersistence(store ?? (memoryPersistence() as unknown as AedesPersistence), ledger, refused)
  const expiryMs = settings.sessionExpirySeconds * 1000
  const nextEpoch = createEpochClock()
  let sweep: NodeJS.Timeout | undefined

  async function expire(): Promise<void> {
    for (const clientId of await ledger.takeExpired(Date.now() - expiryMs)) {
      const dropped = await wipe(persistence as unknown as WipeableStore, clientId)
      // an expired session is no session: a later CONNECT gets Session Present 0 [MQTT-3.2.2-3]
      forget(clientId)
      report.droppedOffline('session-expired', dropped)
      log.info({ clientId, dropped, sessionExpirySeconds: settings.sessionExpirySeconds }, 'persistent session expired')
      cap.emit({
        id: cap.nextId(), ts: Date.now(), brokerId: cap.brokerId, clientId, epoch: nextEpoch(), seq: 1, prev: 0,
        type: 'clientDisconnected', reason: 'session-expired',
        error: { message: `session not connected for ${settings.sessionExpirySeconds} s: removed with ${dropped} queued messages (MQFN_SESSION_EXPIRY_SECONDS)` },
      })
    }
  }

  if (expiryMs > 0) {
    // a sweep every minute, or 4 times per expiry when that is shorter (tests)
    sweep = setInterval(() => {
      expire().catch((err: unknown) => log.warn({ err }, 'session expiry sweep failed; next sweep retries'))
    }, Math.min(60_000, Math.max(250, expiryMs / 4))).unref()
  }

  return {
    persistence,
    aedesOptions: settings.sessionExpirySeconds > 0 ? { sessionExpiryIntervalLimit: settings.sessionExpirySeconds } : {},
    connected: (client) => ledger.online(client.id),
    disconnected(client) {
      if (client.clean === false) ledger.offline(client.id, Date.now())
    },
    close() {
      clearInterval(sweep)
      clearTimeout(summary)
    },
  }
}

/** Removes a session's subscriptions and queued messages through aedes' own store API. */
async function wipe(store: WipeableStore, clientId: string): Promise<number> {
  const client = { id: clientId }
  let dropped = 0
  for await (const packet of store.outgoingStream(client)) {
    // a message never sent has no packet id, and the store clears by packet id
    if (packet.messageId === undefined) packet.messageId = (dropped % 65535) + 1
    await store.outgoingUpdate(client, packet)
    await store.outgoingClearMessageId(client, packet)
    dropped++
  }
  // after the queue: aedes-persistence-redis drops the queue's list with the last
  // subscription, leaving its messages behind
  await store.cleanSubscriptions(client)
  return dropped
}

import type { IncomingMessage } from 'node:http'
import type { Aedes, AedesOptions, Client, PublishPacket, Subscription } from 'aedes'

type Connection = Parameters<Aedes['handle']>[0]
import { mqfnError, type MqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { BrokerConfig } from '../config.ts'
import { clientIdRules, logIdRefusedByAedes } from './client-id.ts'
import { payloadFormatInvalid } from '../mqtt5/payload-format.ts'
import { REASON } from '../mqtt5/reason-codes.ts'
import { ConnectRate } from './connect-rate.ts'
import { ConnectionSlots } from './connection-slots.ts'
import { createPacketGuard } from './parser-guard.ts'
import { ReadGates } from './read-gate.ts'
import { SubscriptionCount } from './subscription-count.ts'
import { topicOverLimit } from './topic-limits.ts'
import { remoteAddressOf } from '../security/peer.ts'

export type LimitSettings = Pick<
  BrokerConfig,
  | 'maxConnections' | 'maxPacketSize' | 'maxTopicLength' | 'maxTopicLevels' | 'maxSubscriptionsPerClient'
  | 'clientIdMaxLength' | 'clientIdPattern' | 'publishRatePerClient' | 'publishBytesPerClient' | 'connectRatePerIp' | 'clientConnectTimeoutMs'
>

/**
 * aedes routes topics through qlobber, which throws on more than 100 levels; aedes
 * refuses deeper topics itself by closing the connection (lib/utils.js). Below that
 * bound our own check applies, which can refuse one SUBSCRIBE filter alone.
 */
const AEDES_MAX_TOPIC_LEVELS = 100

/**
 * The limits of broker/config.ts (docs/security.md "Limits and bad input") as steps of
 * the hook pipeline (broker/hooks/): each returns its refusal, or null to let the
 * packet on to security and capture. Nothing here touches aedes.
 */
export interface Limits {
  /** Options for `new Aedes()`: the limits aedes enforces itself. */
  readonly aedesOptions: Pick<AedesOptions, 'maxClientsIdLength' | 'connectTimeout' | 'maxTopicLevels' | 'readFrom' | 'parserOptions' | 'checkPacket' | 'packetError'>
  /**
   * A new socket, before aedes sees it: the address past connectRatePerIp is returned
   * (the socket is to be closed unread and counted, never an event each), else null.
   */
  overRate(conn: Connection, req: IncomingMessage | undefined): string | null
  /** A new connection aedes made a client for: gates its reads. */
  connection(client: Client): void
  /** CONNECT arrived; `clientId` is as sent (empty when aedes will make one up). */
  connect(client: Client, clientId: string): void
  /** Before authentication: the client id rules and maxConnections. */
  authenticate(client: Client, takeover: boolean): (MqfnError & { returnCode: 2 | 3; reasonCode?: number }) | null
  /** The topic's length and levels; an MQTT 5 payload that is not the UTF-8 its format indicator says (0x99). */
  publish(client: Client | null, packet: PublishPacket): MqfnError | null
  /** Before the ACL: the filter's length and levels. */
  subscribe(client: Client, sub: Subscription): boolean
  /** After the ACL granted it: maxSubscriptionsPerClient. */
  admitSubscription(client: Client, filter: string): boolean
  /** aedes' `connectionError` event: a refusal aedes made itself (e.g. an empty MQTT 5 client id) is logged like ours. */
  refused(client: Client, err: Error): void
  /** aedes' `subscribe` event: these filters are settled. */
  subscribed(client: Client, filters: readonly string[]): void
  close(): void
}

export function createLimits(settings: Readonly<LimitSettings>, log: Logger): Limits {
  // aedes' defaults: 23 characters for MQTT 3.1 client ids, 30 s for CONNECT to arrive
  if (settings.maxTopicLevels > AEDES_MAX_TOPIC_LEVELS) {
    log.warn({ maxTopicLevels: settings.maxTopicLevels }, `maxTopicLevels above ${AEDES_MAX_TOPIC_LEVELS} acts as ${AEDES_MAX_TOPIC_LEVELS}: aedes closes the connection of a deeper topic or filter`)
  }
  const connectRate = settings.connectRatePerIp > 0 ? new ConnectRate(settings.connectRatePerIp) : undefined
  // an empty client id is replaced by a generated one before authenticate runs
  const generatedIds = new WeakSet<Client>()
  const checkId = clientIdRules(settings, log)
  const slots = new ConnectionSlots(settings.maxConnections)
  const subscriptions = new SubscriptionCount(settings.maxSubscriptionsPerClient)
  const gates = new ReadGates(settings, log)
  const guard = createPacketGuard(log)

  return {
    aedesOptions: { maxClientsIdLength: settings.clientIdMaxLength, connectTimeout: settings.clientConnectTimeoutMs, maxTopicLevels: AEDES_MAX_TOPIC_LEVELS, readFrom: gates.readFrom, ...guard.aedesOptions },
    overRate(conn, req) {
      const address = connectRate ? remoteAddressOf(conn, req) : undefined
      return connectRate && address !== undefined && !connectRate.allow(address) ? address : null
    },
    connection(client) {
      gates.attach(client)
    },
    connect(client, clientId) {
      if (!clientId) generatedIds.add(client)
    },
    authenticate(client, takeover) {
      const badId = checkId(client.id, generatedIds.has(client))
      if (badId) return badId
      if (!slots.take(client.conn as unknown as Parameters<ConnectionSlots['take']>[0], takeover)) {
        const full = mqfnError('MQFN_ERR_LIMIT_EXCEEDED', 'maxConnections', `${settings.maxConnections} connections are open (MQFN_MAX_CONNECTIONS)`)
        // 3.1.1: 3 Server unavailable; MQTT 5: 0x97 Quota exceeded, more precise than 0x88 (aedes patch 006)
        return Object.assign(full, { returnCode: 3 as const, reasonCode: REASON.QUOTA_EXCEEDED })
      }
      return null
    },
    // client is null for a will aedes publishes after its broker died: it was checked at CONNECT time
    publish(client, packet) {
      if (!client) return null
      const over = topicOverLimit(packet.topic, settings)
      // MQTT 5: PUBACK / PUBREC 0x90 Topic Name invalid ("not accepted by this Server")
      return over ? Object.assign(over, { reasonCode: REASON.TOPIC_NAME_INVALID }) : payloadFormatInvalid(packet)
    },
    subscribe(client, sub) {
      const over = topicOverLimit(sub.topic, settings)
      if (over) log.debug({ clientId: client.id, filter: sub.topic.slice(0, 200), err: over.message }, 'subscription refused')
      return over === null
    },
    admitSubscription(client, filter) {
      if (subscriptions.admit(client, filter)) return true
      log.debug({ clientId: client.id, filter, maxSubscriptionsPerClient: subscriptions.max }, 'subscription refused: maxSubscriptionsPerClient')
      return false
    },
    refused: logIdRefusedByAedes(log),
    subscribed: (client, filters) => subscriptions.settled(client, filters),
    close: () => connectRate?.close(),
  }
}

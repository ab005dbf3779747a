import type { Aedes, Client, PublishPacket, Subscription } from 'aedes'
import { mqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { BrokerConfig } from '../config.ts'
import { clientIdRules, logIdRefusedByAedes } from './client-id.ts'
import { ConnectRate } from './connect-rate.ts'
import { ConnectionSlots } from './connection-slots.ts'
import { guardParser } from './parser-guard.ts'
import { gateReads } from './read-gate.ts'
import { SubscriptionCount } from './subscription-count.ts'
import { topicOverLimit } from './topic-limits.ts'
import type { ConnectionErrorLog } from '../security/connection-errors.ts'
import { remoteAddressOf } from '../security/peer.ts'

export type LimitSettings = Pick<
  BrokerConfig,
  | 'maxConnections' | 'maxPacketSize' | 'maxTopicLength' | 'maxTopicLevels' | 'maxSubscriptionsPerClient'
  | 'clientIdMaxLength' | 'clientIdPattern' | 'publishRatePerClient' | 'connectRatePerIp' | 'clientConnectTimeoutMs'
>

/**
 * aedes routes topics through qlobber, which throws on more than 100 levels; aedes
 * refuses deeper topics itself by closing the connection (lib/utils.js). Below that
 * bound our own check applies, which can refuse one SUBSCRIBE filter alone.
 */
const AEDES_MAX_TOPIC_LEVELS = 100

type Callback = (error?: Error | null) => void
type Internals = Aedes & {
  clients: Record<string, Client>
  connectTimeout: number
  maxClientsIdLength: number
  maxTopicLevels: number
}

/**
 * Installs the limits of broker/config.ts (docs/security.md "Limits and bad input").
 * Runs after wireCapture: each hook here checks first and then calls the hook that was
 * installed before it (authentication, ACL, capture), so a refusal never reaches them
 * and an accepted packet goes through them unchanged. Must run before the listeners
 * open, which take `aedes.handle` as it is then.
 */
export function wireLimits(aedes: Aedes, settings: Readonly<LimitSettings>, log: Logger, connectionErrors: ConnectionErrorLog): void {
  const internals = aedes as Internals
  // aedes' defaults: 23 characters for MQTT 3.1 client ids, 30 s for CONNECT to arrive
  internals.maxClientsIdLength = settings.clientIdMaxLength
  internals.connectTimeout = settings.clientConnectTimeoutMs
  internals.maxTopicLevels = AEDES_MAX_TOPIC_LEVELS
  if (settings.maxTopicLevels > AEDES_MAX_TOPIC_LEVELS) {
    log.warn({ maxTopicLevels: settings.maxTopicLevels }, `maxTopicLevels above ${AEDES_MAX_TOPIC_LEVELS} acts as ${AEDES_MAX_TOPIC_LEVELS}: aedes closes the connection of a deeper topic or filter`)
  }

  const connectRate = settings.connectRatePerIp > 0 ? new ConnectRate(settings.connectRatePerIp) : undefined
  if (connectRate) aedes.once('closed', () => connectRate.close())
  const handle = aedes.handle
  // the listeners (broker/listeners) ignore what handle returns: a refused connection has no client
  aedes.handle = ((conn, req) => {
    const address = connectRate ? remoteAddressOf(conn, req) : undefined
    if (connectRate && address !== undefined && !connectRate.allow(address)) {
      // closed before aedes sees it: nothing read, no client made, counted and summarised, not an event each
      conn.destroy()
      connectionErrors.rateLimited(address)
      return undefined
    }
    const client = handle(conn, req)
    guardParser(client as Parameters<typeof guardParser>[0], log)
    gateReads(client, settings, log)
    return client
  }) as Aedes['handle']

  // an empty client id is replaced by a generated one before authenticate runs
  const generatedIds = new WeakSet<Client>()
  const preConnect = aedes.preConnect
  aedes.preConnect = (client, packet, done) => {
    if (!packet.clientId) generatedIds.add(client)
    preConnect.call(aedes, client, packet, done)
  }

  const checkId = clientIdRules(settings, log)
  aedes.on('connectionError', logIdRefusedByAedes(log))
  const slots = new ConnectionSlots(settings.maxConnections)
  const authenticate = aedes.authenticate
  aedes.authenticate = (client, username, password, done) => {
    const badId = checkId(client.id, generatedIds.has(client))
    if (badId) return done(badId, false)
    if (!slots.take(client.conn as unknown as Parameters<ConnectionSlots['take']>[0], internals.clients[client.id] !== undefined)) {
      const full = mqfnError('MQFN_ERR_LIMIT_EXCEEDED', 'maxConnections', `${settings.maxConnections} connections are open (MQFN_MAX_CONNECTIONS)`)
      return done(Object.assign(full, { returnCode: 3 as const }), false)
    }
    authenticate.call(aedes, client, username, password, done)
  }

  const authorizePublish = aedes.authorizePublish
  aedes.authorizePublish = (client: Client | null, packet: PublishPacket, done: Callback) => {
    // client is null for a will aedes publishes after its broker died: it was checked at CONNECT time
    const over = client ? topicOverLimit(packet.topic, settings) : null
    if (over) return done(over)
    authorizePublish.call(aedes, client, packet, done)
  }

  const subscriptions = new SubscriptionCount(settings.maxSubscriptionsPerClient)
  const authorizeSubscribe = aedes.authorizeSubscribe
  aedes.authorizeSubscribe = (client: Client, sub: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void) => {
    // a null subscription is refused with return code 0x80, the others stand [MQTT-3.9.3-2]
    const over = topicOverLimit(sub.topic, settings)
    if (over) {
      log.debug({ clientId: client.id, filter: sub.topic.slice(0, 200), err: over.message }, 'subscription refused')
      return done(null, null)
    }
    authorizeSubscribe.call(aedes, client, sub, (err, granted) => {
      if (err || !granted) return done(err, granted)
      if (!subscriptions.admit(client, granted.topic)) {
        log.debug({ clientId: client.id, filter: granted.topic, maxSubscriptionsPerClient: subscriptions.max }, 'subscription refused: maxSubscriptionsPerClient')
        return done(null, null)
      }
      done(null, granted)
    })
  }
  aedes.on('subscribe', (subs: Subscription[], client: Client) => subscriptions.settled(client, subs.map((s) => s.topic)))
}

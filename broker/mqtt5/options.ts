import type { AedesOptions } from 'aedes'
import type { Redis } from 'ioredis'
import type { BrokerConfig } from '../config.ts'
import { redisSharedClaim } from './shared-claim.ts'
import { redisSharedRegistry } from './shared-registry.ts'

/**
 * The MQTT 5 settings aedes advertises in a v5 CONNACK and enforces: Topic Alias
 * Maximum (aliases 0 or above it get DISCONNECT 0x94, [MQTT-3.3.2-8/9]),
 * Receive Maximum (one QoS 1/2 PUBLISH past it gets DISCONNECT 0x93,
 * [MQTT-3.3.4-9]; the enforcement is patches/aedes+2.0.0-beta.1+002+mqtt5.patch),
 * Maximum Packet Size [MQTT-3.2.2.3.6] (maxPacketSize; our read gate,
 * broker/limits/read-gate.ts, enforces it before aedes' parser buffers a byte) and
 * Server Keep Alive [MQTT-3.2.2-21] (aedes' keepaliveLimit, MQTT 5 only by patch
 * 006+reason-codes); topic aliases in what is sent to a client that allows them
 * [MQTT-3.3.2-10..12] (patch 007+server-topic-aliases); and, for a cluster, the claim that makes a shared
 * subscription's delivery cluster-wide (shared-claim.ts) and the record of which brokers
 * hold its connected members, for the offline fallback (shared-registry.ts, patch 008).
 */
export function mqtt5Options(
  config: Pick<BrokerConfig, 'topicAliasMaximum' | 'serverTopicAliases' | 'receiveMaximum' | 'maxPacketSize' | 'maxKeepAliveSeconds' | 'persistence' | 'prefix' | 'brokerId'>,
  redis: Redis,
): Pick<AedesOptions, 'topicAliasMaximum' | 'outboundTopicAliases' | 'receiveMaximum' | 'maximumPacketSize' | 'keepaliveLimit' | 'sharedClaim' | 'sharedRegistry'> {
  return {
    topicAliasMaximum: config.topicAliasMaximum,
    outboundTopicAliases: config.serverTopicAliases,
    receiveMaximum: config.receiveMaximum,
    maximumPacketSize: config.maxPacketSize,
    keepaliveLimit: config.maxKeepAliveSeconds,
    // one broker (memory persistence) needs no claim: its members are all there are
    ...(config.persistence === 'redis'
      ? { sharedClaim: redisSharedClaim(redis, config.prefix, config.brokerId), sharedRegistry: redisSharedRegistry(redis, config.prefix, config.brokerId) }
      : {}),
  }
}

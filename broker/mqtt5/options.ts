import type { AedesOptions } from 'aedes'
import type { Redis } from 'ioredis'
import type { BrokerConfig } from '../config.ts'
import { redisSharedClaim } from './shared-claim.ts'

/**
 * The MQTT 5 settings aedes advertises in a v5 CONNACK and enforces: Topic Alias
 * Maximum (aliases 0 or above it get DISCONNECT 0x94, [MQTT-3.3.2-8/9]) and
 * Receive Maximum (one QoS 1/2 PUBLISH past it gets DISCONNECT 0x93,
 * [MQTT-3.3.4-9]; the enforcement is patches/aedes+2.0.0-beta.1+002+mqtt5.patch);
 * and, for a cluster, the claim that makes a shared subscription's delivery
 * cluster-wide (shared-claim.ts).
 */
export function mqtt5Options(
  config: Pick<BrokerConfig, 'topicAliasMaximum' | 'receiveMaximum' | 'persistence' | 'prefix' | 'brokerId'>,
  redis: Redis,
): Pick<AedesOptions, 'topicAliasMaximum' | 'receiveMaximum' | 'sharedClaim'> {
  return {
    topicAliasMaximum: config.topicAliasMaximum,
    receiveMaximum: config.receiveMaximum,
    // one broker (memory persistence) needs no claim: its members are all there are
    ...(config.persistence === 'redis' ? { sharedClaim: redisSharedClaim(redis, config.prefix, config.brokerId) } : {}),
  }
}

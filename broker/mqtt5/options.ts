import type { AedesOptions } from 'aedes'
import type { BrokerConfig } from '../config.ts'

/**
 * The MQTT 5 settings aedes advertises in a v5 CONNACK and enforces: Topic Alias
 * Maximum (aliases 0 or above it get DISCONNECT 0x94, [MQTT-3.3.2-8/9]) and
 * Receive Maximum (one QoS 1/2 PUBLISH past it gets DISCONNECT 0x93,
 * [MQTT-3.3.4-9]; the enforcement is patches/aedes+2.0.0-beta.1+002+mqtt5.patch).
 */
export function mqtt5Options(config: Pick<BrokerConfig, 'topicAliasMaximum' | 'receiveMaximum'>): Pick<AedesOptions, 'topicAliasMaximum' | 'receiveMaximum'> {
  return { topicAliasMaximum: config.topicAliasMaximum, receiveMaximum: config.receiveMaximum }
}

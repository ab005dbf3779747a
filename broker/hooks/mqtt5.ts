import type { Aedes } from 'aedes'
import { packetDroppedLog } from '../mqtt5/packet-dropped.ts'
import { clearTimersOnRemoteConnect } from './cluster-timers.ts'
import { safely, type Pipeline } from './pipeline.ts'

/**
 * The MQTT 5 steps that observe aedes rather than decide in a hook: session timers
 * across a cluster (cluster-timers.ts), and the log of messages too large for their
 * client (broker/mqtt5/packet-dropped.ts, on aedes patch 002's `packetDropped`).
 */
export function observeMqtt5(aedes: Aedes, p: Pipeline): void {
  clearTimersOnRemoteConnect(aedes)
  aedes.on('packetDropped' as 'closed', safely(p.log, 'packetDropped', packetDroppedLog(p.log)) as () => void)
}

import { startConfiguredAdmin, type AdminServer } from '../common/admin-server.ts'
import type { Logger } from '../common/logger.ts'
import type { BrokerConfig } from './config.ts'
import type { BrokerMetrics } from './metrics.ts'

/**
 * The broker's admin server: /healthz, /readyz (ready while its listeners accept and
 * its Redis connection is up) and /metrics. Undefined when `adminEnabled` is false.
 */
export async function startBrokerAdmin(
  config: Readonly<Pick<BrokerConfig, 'adminEnabled' | 'adminHost' | 'adminPort' | 'adminToken'>>,
  log: Logger,
  metrics: BrokerMetrics,
  ready: () => boolean,
): Promise<AdminServer | undefined> {
  return startConfiguredAdmin(config, log, ready, metrics.registry)
}

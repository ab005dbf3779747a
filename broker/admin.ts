import { startAdminServer, type AdminServer } from '../common/admin-server.ts'
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
  if (!config.adminEnabled) return undefined
  return startAdminServer({
    host: config.adminHost,
    port: config.adminPort,
    token: config.adminToken,
    log,
    ready,
    metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
  })
}

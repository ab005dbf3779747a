import type { Queue } from 'bullmq'
import type { Db } from 'mongodb'
import { startConfiguredAdmin, type AdminServer, type Readiness } from '../../common/admin-server.ts'
import type { Logger } from '../../common/logger.ts'
import type { WorkerConfig } from '../config.ts'
import type { EnqueueRetries } from '../redelivery/index.ts'
import type { WorkerMetrics } from '../metrics.ts'
import { bullBoardRoute } from './bull-board.ts'
import { dashboardRoute, type DashboardDeps } from './dashboard.ts'

export interface WorkerAdminDeps {
  metrics: WorkerMetrics
  /** Redis and MongoDB reachable, the BullMQ workers running, every handler file loaded (else which did not). */
  ready(): Promise<Readiness>
  db: Db
  /** Every event queue and the outbox, for bull-board. */
  queues: readonly Queue[]
  enqueue: EnqueueRetries
  broken?: DashboardDeps['broken']
  lastSeen?: DashboardDeps['lastSeen']
}

/**
 * The worker's admin server: /healthz, /readyz, /metrics, and the dashboard
 * (/dashboard and bull-board at /dashboard/queues). Undefined when disabled.
 */
export async function startWorkerAdmin(
  config: Readonly<Pick<WorkerConfig, 'adminEnabled' | 'adminHost' | 'adminPort' | 'adminToken'>>,
  log: Logger,
  deps: WorkerAdminDeps,
): Promise<AdminServer | undefined> {
  // nothing to build (bull-board's express app) when nobody will serve it
  if (!config.adminEnabled) return undefined
  // bull-board first: /dashboard would match its paths too
  return startConfiguredAdmin(config, log, deps.ready, deps.metrics.registry, [
    bullBoardRoute(deps.queues),
    dashboardRoute({ db: deps.db, enqueue: deps.enqueue, ...(deps.broken ? { broken: deps.broken } : {}), ...(deps.lastSeen ? { lastSeen: deps.lastSeen } : {}) }),
  ])
}

import type { Aedes } from 'aedes'
import { createEpochClock, createIdGenerator } from '../common/ids.ts'
import { createLogger, type Logger } from '../common/logger.ts'
import { throttled } from '../common/throttle.ts'
import { within } from '../common/within.ts'
import { assertRedisReachable, checkRedisSettings, createRedis } from '../common/redis.ts'
import type { BrokerConfig } from './config.ts'
import { newTag, startCapture, type CaptureOutput } from './capture/output.ts'
import { startCaptureThread } from './capture/capture-thread-sink.ts'
import { Capture } from './capture/capture.ts'
import { createDeliveredSwitch } from './capture/delivered-switch.ts'
import { createHookedAedes } from './hooks/hooks.ts'
import { ConnectionErrorLog, summaryEvent } from './security/connection-errors.ts'
import { createSecurity } from './security/security.ts'
import { createLimits } from './limits/limits.ts'
import { loadTls, openListeners, type ListenerInfo } from './listeners.ts'
import { startOutbox } from './outbox.ts'
import { createClusterBackend } from './cluster/persistence.ts'
import { createBrokerMetrics } from './metrics.ts'
import { mqtt5Options } from './mqtt5/options.ts'
import { createFlow } from './flow/flow.ts'
import { createSessions } from './flow/sessions.ts'
import { startConfiguredAdmin } from '../common/admin-server.ts'

export interface Broker {
  readonly id: string
  readonly listeners: readonly ListenerInfo[]
  readonly aedes: Aedes
  /** Port of the admin HTTP server (/healthz, /readyz, /metrics); undefined when it is disabled. */
  readonly adminPort: number | undefined
  /** Events held in memory, not yet in Redis. */
  backlog(): { events: number; bytes: number }
  /**
   * Stops accepting connections, closes clients (each gets clientDisconnecting /
   * clientDisconnected with reason `shutdown`), flushes every captured event to
   * Redis, emits `closed`. Safe to call twice.
   */
  close(): Promise<void>
}

export async function createBroker(config: Readonly<BrokerConfig>, log: Logger = createLogger('broker', config.logLevel)): Promise<Broker> {
  // a security misconfiguration fails start-up before anything else is touched
  const tls = loadTls(config)
  const security = await createSecurity(config, log)
  let backend: Awaited<ReturnType<typeof createClusterBackend>>
  try {
    await assertRedisReachable(config.redisUrl, config.connectTimeoutMs)
    // Sessions and the message emitter: in memory, or in Redis for a cluster (docs/cluster.md)
    backend = await createClusterBackend(config, log)
  } catch (err) {
    void security.close()
    throw err
  }
  const connection = createRedis(config.redisUrl, `mqfn-broker:${config.brokerId}`)
  // read at scrape time; every source below exists by then
  const metrics = createBrokerMetrics({
    connections: () => aedes.connectedClients,
    captured: () => batcher.captured,
    authFailures: () => cap.authFailures,
    connectRateRefused: () => connectionErrors.rateRefused,
    connectionErrorsSummarised: () => connectionErrors.summarised,
    backlog: () => batcher.backlog,
    dropped: () => flow.report.counts,
  })
  connection.on('reconnecting', metrics.redisReconnect)
  connection.on('error', throttled(5000, (suppressed, err) => log.warn({ err: (err as Error).message, suppressed }, 'redis connection error')))
  await checkRedisSettings(connection, log)

  // set once close exists: the capture thread giving up stops the broker
  let stopBroker: (() => void) | undefined
  // the store, its pump and their JSON on this thread, or in a thread of their own (MQFN_CAPTURE_THREAD)
  const output: CaptureOutput = config.captureThread === 'all'
    ? await startCaptureThread(config, log, metrics.written, (err) => {
      log.fatal({ err }, 'event capture cannot continue: stopping the broker')
      process.exitCode = 1
      stopBroker?.()
    })
    : await startCapture(config, connection, newTag(config.brokerId), log, metrics.written, config.captureThread === 'pump')
  const batcher = output.sink
  const cap = new Capture(config.brokerId, batcher, createIdGenerator())
  const delivered = await createDeliveredSwitch(config.captureDelivered, connection, config.prefix, log)
  cap.delivered = delivered
  const nextEpoch = createEpochClock()
  const connectionErrors = new ConnectionErrorLog(config.connectionErrorsPerIp, config.connectionErrorWindowMs, (summary) => cap.emit(summaryEvent(summary, {
    id: cap.nextId(), ts: Date.now(), brokerId: config.brokerId, epoch: nextEpoch(), connectRatePerIp: config.connectRatePerIp, perAddress: config.connectionErrorsPerIp,
  })))

  const limits = createLimits(config, log)
  const flow = createFlow(config, cap, log)
  const sessions = createSessions(config, connection, cap, flow.report, log, backend.options.persistence, (id) => backend.sessions.remove(id))
  let shuttingDown = false
  const { aedes, handle, listen } = createHookedAedes({ id: config.brokerId, ...backend.options, persistence: sessions.persistence, ...mqtt5Options(config, connection), ...flow.aedesOptions, ...sessions.aedesOptions }, {
    limits,
    security,
    capture: cap,
    sessions: backend.sessions,
    offlineSessions: sessions,
    log,
    connectionErrors,
    nextEpoch,
    forwardQos1BeforeAck: config.persistence === 'redis',
    maxKeepAliveSeconds: config.maxKeepAliveSeconds,
    shuttingDown: () => shuttingDown,
  })
  aedes.once('closed', () => limits.close())
  aedes.on('error' as 'closed', (err?: unknown) => log.error({ err }, 'aedes error'))
  // before the listeners accept: the wills this broker id left behind go first (broker/hooks/previous-wills.ts)
  await listen()

  let listeners
  let admin
  let accepting = false
  try {
    listeners = await openListeners(handle, config, log, tls)
    accepting = true
    // ready while the listeners accept and Redis is connected
    admin = await startConfiguredAdmin(config, log, () => accepting && connection.status === 'ready', metrics.registry)
  } catch (err) {
    delivered.close()
    await output.close(config.shutdownFlushTimeoutMs)
    await listeners?.close()
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    await backend.close()
    sessions.close()
    await security.close()
    connection.disconnect()
    throw err
  }
  const outbox = startOutbox(aedes, connection, config.prefix, config.outboxConcurrency, log)

  cap.emit({ id: cap.nextId(), ts: Date.now(), brokerId: config.brokerId, type: 'ready', version: (aedes as Aedes & { version: string }).version, listeners: listeners.info })
  log.info({ brokerId: config.brokerId, listeners: listeners.info, auth: config.auth, mechanisms: security.mechanisms, acl: config.aclFile ?? null }, 'broker ready')

  let closing: Promise<void> | undefined
  const close = async () => {
    accepting = false
    await listeners.stopAccepting()
    shuttingDown = true
    // with Redis unreachable this would wait for it; running publishes are retried elsewhere
    if (!(await within(5000, outbox.close()))) void outbox.close(true)
    const clients = aedes.connectedClients
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    await backend.close()
    flow.close()
    sessions.close()
    connectionErrors.close()
    delivered.close()
    cap.emit({ id: cap.nextId(), ts: Date.now(), brokerId: config.brokerId, type: 'closed', clients })
    await security.close()
    const flushed = await output.close(config.shutdownFlushTimeoutMs)
    await listeners.close()
    await admin?.close()
    if (!flushed) {
      log.error({ backlog: batcher.backlog }, 'shutdown: Redis did not take the captured events in time; they are lost (QoS 1/2 ones were not acknowledged)')
      connection.disconnect()
      throw new Error(`${batcher.backlog.events} captured events not written to Redis`)
    }
    await connection.quit().catch(() => connection.disconnect())
    log.info('broker closed')
  }
  stopBroker = () => void (closing ??= close()).catch(() => {})
  return {
    id: config.brokerId,
    listeners: listeners.info,
    aedes,
    adminPort: admin?.port,
    backlog: () => batcher.backlog,
    close: () => (closing ??= close()),
  }
}

import { hostname } from 'node:os'
import { z } from 'zod'
import {
  flag,
  loadConfig,
  logLevel,
  positiveInt,
  port,
  queuePrefix,
  redisUrl,
  type EnvNames,
  type LoadOptions,
} from '../common/config.ts'

export const BrokerConfigSchema = z.object({
  /** Names this broker in every event it captures. @defaultValue `<hostname>-<pid>` */
  brokerId: z.string().min(1).default(`${hostname()}-${process.pid}`),
  redisUrl,
  /** BullMQ key prefix, shared with the workers. @defaultValue `{mqfn}` */
  prefix: queuePrefix,
  /** Interface the MQTT listeners bind to. @defaultValue `0.0.0.0` */
  host: z.string().min(1).default('0.0.0.0'),
  /** MQTT over TCP. @defaultValue 1883 */
  mqttPort: port(1883),
  /** MQTT over WebSocket; 0 picks a free port. @defaultValue 8080 */
  wsPort: port(8080),
  /** Serve MQTT over WebSocket. @defaultValue true */
  wsEnabled: flag(true),
  /** HTTP path of the WebSocket endpoint. @defaultValue `/mqtt` */
  wsPath: z.string().startsWith('/').default('/mqtt'),
  /** Most events in one BullMQ job. @defaultValue 1000 */
  captureMaxJobEvents: positiveInt(1000),
  /** Most bytes in one BullMQ job (payloads count base64-encoded). @defaultValue 4 MiB */
  captureMaxJobBytes: positiveInt(4 * 1024 * 1024),
  /** Events held in memory before publishers wait. @defaultValue 100000 */
  captureMaxBacklogEvents: positiveInt(100_000),
  /** Bytes held in memory before publishers wait. @defaultValue 256 MiB */
  captureMaxBacklogBytes: positiveInt(256 * 1024 * 1024),
  /** Messages from ctx.publish this broker delivers at once. @defaultValue 64 */
  outboxConcurrency: positiveInt(64),
  /**
   * On shutdown, how long to wait for captured events to reach Redis. Past it the
   * broker exits anyway (code 1) and logs how many events it could not write: QoS 1/2
   * ones were never acknowledged and clients resend them; QoS 0 ones are lost.
   * @defaultValue 20000
   */
  shutdownFlushTimeoutMs: positiveInt(20_000),
  /** How long start-up waits for Redis before giving up. @defaultValue 5000 */
  connectTimeoutMs: positiveInt(5000),
  logLevel,
})

export type BrokerConfig = z.output<typeof BrokerConfigSchema>

export const BROKER_ENV: EnvNames<BrokerConfig> = {
  brokerId: 'MQFN_BROKER_ID',
  redisUrl: 'REDIS_URL',
  prefix: 'MQFN_PREFIX',
  host: 'MQFN_HOST',
  mqttPort: 'MQFN_MQTT_PORT',
  wsPort: 'MQFN_WS_PORT',
  wsEnabled: 'MQFN_WS_ENABLED',
  wsPath: 'MQFN_WS_PATH',
  captureMaxJobEvents: 'MQFN_CAPTURE_MAX_JOB_EVENTS',
  captureMaxJobBytes: 'MQFN_CAPTURE_MAX_JOB_BYTES',
  captureMaxBacklogEvents: 'MQFN_CAPTURE_MAX_BACKLOG_EVENTS',
  captureMaxBacklogBytes: 'MQFN_CAPTURE_MAX_BACKLOG_BYTES',
  outboxConcurrency: 'MQFN_OUTBOX_CONCURRENCY',
  shutdownFlushTimeoutMs: 'MQFN_SHUTDOWN_FLUSH_TIMEOUT_MS',
  connectTimeoutMs: 'MQFN_CONNECT_TIMEOUT_MS',
  logLevel: 'MQFN_LOG_LEVEL',
}

export function loadBrokerConfig(options?: LoadOptions): Readonly<BrokerConfig> {
  return loadConfig(BrokerConfigSchema, BROKER_ENV, options)
}

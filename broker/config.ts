import { hostname } from 'node:os'
import { z } from 'zod'
import {
  adminSettings,
  envNames,
  flag,
  loadConfig,
  logLevel,
  nonNegativeInt,
  positiveInt,
  port,
  queuePrefix,
  redisUrl,
  type LoadOptions,
} from '../common/config.ts'

const optionalString = z.string().min(1).optional()

function isRegExp(source: string): boolean {
  try {
    new RegExp(source)
    return true
  } catch {
    return false
  }
}

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
  /**
   * When `delivered` events are captured: `auto` while some worker has a `delivered`
   * handler loaded (checked every second), `always`, or `never`. @defaultValue `auto`
   */
  captureDelivered: z.enum(['auto', 'always', 'never']).default('auto'),
  /**
   * Capture's writing in a worker thread instead of on the broker's event loop: `off`;
   * `pump`, the BullMQ job writes alone (the acknowledgement path's HSET stays on the
   * event loop); `all`, the events' JSON, the capture store, the pump and recovery (a
   * thread that keeps dying stops the broker). docs/performance.md, "Direction 1".
   * @defaultValue `off`
   */
  captureThread: z.enum(['off', 'pump', 'all']).default('off'),
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

  // ---- Cluster: sessions and messages through Redis (broker/cluster, docs/cluster.md) ----
  /**
   * Where aedes keeps sessions, subscriptions, retained messages, QoS 1/2 in flight and
   * offline queues, and how messages reach subscribers. `memory`: in this process, lost
   * on restart. `redis`: in Redis, shared by every broker with the same prefix; needed
   * for more than one broker. @defaultValue `memory`
   */
  persistence: z.enum(['memory', 'redis']).default('memory'),
  /** Redis for `persistence: redis`, when it should not be `redisUrl`. @defaultValue redisUrl */
  persistenceRedisUrl: redisUrl.unwrap().optional(),
  /** Offline messages a persistent session receives on CONNECT; the rest wait for its next connection. @defaultValue 1000 */
  persistenceMaxSessionDelivery: positiveInt(1000),

  // ---- Security: authentication (broker/security, README "Security") ----
  /**
   * `required`: every client authenticates with one of the mechanisms configured below,
   * and start-up fails when none is. `none`: anyone may connect, warned at start.
   * @defaultValue `required`
   */
  auth: z.enum(['required', 'none']).default('required'),
  /** Users file (JSON or YAML) of scrypt hashes, written by `mqfn user`; re-read when it changes. */
  usersFile: optionalString,
  /** HS256 secret for JWTs sent as the password (at least 32 bytes). */
  jwtSecret: z.string().min(32, 'expected at least 32 characters').optional(),
  /** Keys for RS256/ES256 JWTs: a JWKS file path or an https:// (or loopback http://) URL. */
  jwtJwks: optionalString,
  /** When set, a JWT's `iss` must equal it. */
  jwtIssuer: optionalString,
  /** When set, a JWT's `aud` must contain it. */
  jwtAudience: optionalString,
  /** Claim holding the username. @defaultValue `sub` */
  jwtUsernameClaim: z.string().min(1).default('sub'),
  /**
   * Claim holding the topics the token allows: an array of filters (publish and
   * subscribe) or `{ "publish": [...], "subscribe": [...] }`. Absent: the ACL decides.
   * @defaultValue `topics`
   */
  jwtTopicsClaim: z.string().min(1).default('topics'),
  /** Failed authentications from one IP address within `authFailureWindowMs` after which it is refused unchecked. @defaultValue 10 */
  authFailureLimit: positiveInt(10),
  /** @defaultValue 60000 */
  authFailureWindowMs: positiveInt(60_000),

  // ---- Security: authorization ----
  /** ACL rules (JSON or YAML): first match wins, deny when no rule matches. Re-read when it changes. */
  aclFile: optionalString,

  /**
   * Who may connect with a client id when auth is `required` (docs/security.md "Client
   * ids"). `owner`: the user whose session holds the id; anyone else gets CONNACK 5
   * (MQTT 5: 0x87) and the running client stays. `username-prefix`: ids are
   * `<username>:<suffix>`. `any`: no check. @defaultValue `owner`
   */
  clientIdPolicy: z.enum(['owner', 'username-prefix', 'any']).default('owner'),

  // ---- Security: TLS (broker/listeners.ts) ----
  /** PEM certificate chain; with tlsKey, opens the MQTT-over-TLS listener (and WSS). */
  tlsCert: optionalString,
  /** PEM private key for tlsCert. */
  tlsKey: optionalString,
  /** PEM CA bundle that client certificates must chain to. */
  tlsCa: optionalString,
  /** MQTT over TLS. @defaultValue 8883 */
  tlsPort: port(8883),
  /** MQTT over secure WebSocket, when TLS is configured; 0 picks a free port. @defaultValue 8084 */
  wssPort: port(8084),
  /** Serve WSS when TLS is configured. @defaultValue true */
  wssEnabled: flag(true),
  /** `off`, `optional` (verified when sent) or `required` client certificates (needs tlsCa). @defaultValue `off` */
  tlsClientCerts: z.enum(['off', 'optional', 'required']).default('off'),
  /** A verified client certificate's CN is the username, and no password is needed. @defaultValue false */
  tlsCnAsUsername: flag(false),

  // ---- Limits (broker/limits) ----
  /** Connections open at once; past it new ones get CONNACK 3 (server unavailable). @defaultValue 100000 */
  maxConnections: positiveInt(100_000),
  /** Largest MQTT packet in bytes; a larger one closes the connection. @defaultValue 1 MiB */
  maxPacketSize: positiveInt(1024 * 1024),
  /** Longest topic (or filter) in UTF-8 bytes. @defaultValue 1024 */
  maxTopicLength: positiveInt(1024),
  /** Most levels in a topic (or filter). @defaultValue 32 */
  maxTopicLevels: positiveInt(32),
  /** Most subscriptions one client holds. @defaultValue 1000 */
  maxSubscriptionsPerClient: positiveInt(1000),
  /** Longest client id. @defaultValue 128 */
  clientIdMaxLength: positiveInt(128),
  /**
   * When set, client ids must also match this regular expression. Unset, any UTF-8 id
   * within clientIdMaxLength and without control characters is accepted [MQTT-3.1.3-5].
   */
  clientIdPattern: z.string().min(1).refine(isRegExp, 'expected a regular expression').optional(),
  /** PUBLISH packets per second per client; past it the broker stops reading the client's socket until the rate drops. 0: no limit. @defaultValue 0 */
  publishRatePerClient: nonNegativeInt(0),
  /**
   * New connections per second per IP address, with a burst of one second's worth; past
   * it connections are closed before anything is read, counted and summarised (one
   * event per address per window). 100 lets a fleet of 10,000 devices behind one NAT
   * back in within ~100 s of a restart. 0: no limit. @defaultValue 100
   */
  connectRatePerIp: nonNegativeInt(100),
  /**
   * Connection errors (refused CONNECTs, connect timeouts, protocol errors before a
   * session) captured one by one per IP address and window; past it they are counted
   * into one summary event per address and reason at the window's end. 0: every one is
   * captured. @defaultValue 20
   */
  connectionErrorsPerIp: nonNegativeInt(20),
  /** The window of connectionErrorsPerIp and of the connect-rate summaries. @defaultValue 60000 */
  connectionErrorWindowMs: positiveInt(60_000),
  /** How long a new connection may take to send CONNECT; then it is closed (reason `connect-timeout`). @defaultValue 10000 */
  clientConnectTimeoutMs: positiveInt(10_000),

  // ---- MQTT 5 (broker/mqtt5, docs/mqtt5.md) ----
  /**
   * Topic Alias Maximum advertised in a v5 CONNACK: aliases 1..n a client may use
   * for topics it publishes; 0 or a larger alias gets DISCONNECT 0x94. 0: none. @defaultValue 32
   */
  topicAliasMaximum: z.coerce.number().int().min(0).max(65535).default(32),
  /**
   * Topic aliases broker to client: an MQTT 5 client whose CONNECT allows aliases
   * gets the topics sent to it aliased, up to its maximum (the name once, then 2 bytes
   * in place of it) [MQTT-3.3.2-10..12]. false: full topic names always. @defaultValue true
   */
  serverTopicAliases: flag(true),
  /**
   * Receive Maximum advertised in a v5 CONNACK: QoS 1/2 PUBLISH packets a client may
   * have unacknowledged; one more gets DISCONNECT 0x93. 0: not advertised (the
   * protocol's 65535). Lower it only for clients that honour it. @defaultValue 0
   */
  receiveMaximum: z.coerce.number().int().min(0).max(65535).default(0),
  /**
   * Server Keep Alive: an MQTT 5 client asking for no keepalive (0) or a longer one
   * gets this many seconds in its CONNACK and is held to it (closed, DISCONNECT 0x8D,
   * after 1.5 times it without a packet) [MQTT-3.2.2-21/22]. MQTT 3.1/3.1.1 clients
   * keep their own: their CONNACK cannot say it. 0: off. Off by default: MQTT.js 5.16
   * ignores a Server Keep Alive when its own keepalive is 0, and would be closed. @defaultValue 0
   */
  maxKeepAliveSeconds: z.coerce.number().int().min(0).max(65535).default(0),
  // ---- Flow: per-client delivery bounds (broker/flow, docs/security.md "Limits") ----
  /** QoS 1/2 messages sent to one client and not yet acknowledged; an MQTT 5 client's Receive Maximum lowers it. @defaultValue 100 */
  maxInflightPerClient: positiveInt(100),
  /** Messages waiting in one client's outbound queue (its socket is full or its in-flight window is). @defaultValue 10000 */
  maxQueuedMessagesPerClient: positiveInt(10_000),
  /** Payload and topic bytes waiting in one client's outbound queue. @defaultValue 16 MiB */
  maxQueuedBytesPerClient: positiveInt(16 * 1024 * 1024),
  /**
   * Past a queue bound QoS 0 messages are dropped first; then `drop-oldest` drops the
   * oldest queued QoS 1/2 message and `disconnect` closes the client (MQTT 5: DISCONNECT 0x97).
   * @defaultValue `drop-oldest`
   */
  queueOverflow: z.enum(['drop-oldest', 'disconnect']).default('drop-oldest'),
  /** Bytes of PUBLISH packets per second per client; past it the broker stops reading the client's socket until the rate drops. 0: no limit. @defaultValue 4 MiB */
  publishBytesPerClient: nonNegativeInt(4 * 1024 * 1024),
  /** QoS 1/2 messages queued for one persistent session (connected or not); past it new ones are not queued for it (Mosquitto's max_queued_messages). @defaultValue 1000 */
  maxOfflineMessages: positiveInt(1000),
  /** Payload and topic bytes queued for one persistent session. @defaultValue 16 MiB */
  maxOfflineBytes: positiveInt(16 * 1024 * 1024),
  /** A persistent session not connected for this long is removed with its queue (Mosquitto's persistent_client_expiration). 0: never. @defaultValue 7 days */
  sessionExpirySeconds: nonNegativeInt(7 * 24 * 3600),

  // ---- Admin HTTP (health, metrics) ----
  ...adminSettings(9090),
})

export type BrokerConfig = z.output<typeof BrokerConfigSchema>

/** Each key's environment variable (`mqttPort` → `MQFN_MQTT_PORT`; common/config.ts). */
export const BROKER_ENV = envNames(BrokerConfigSchema)

export function loadBrokerConfig(options?: LoadOptions): Readonly<BrokerConfig> {
  return loadConfig(BrokerConfigSchema, BROKER_ENV, options)
}

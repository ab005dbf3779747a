import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { EVENT_TYPES } from '../common/event-types.ts'

/*
 * The broker's Prometheus metrics. The capture path only bumps plain numbers (the
 * batcher's per-type counts, the capture's refused logins); they are turned into
 * metrics here at scrape time, so a published message costs one increment.
 */

/** What the broker exposes to its metrics, read at scrape time. */
export interface BrokerGauges {
  connections(): number
  captured(): Readonly<Record<string, number>>
  authFailures(): number
  connectRateRefused(): number
  connectionErrorsSummarised(): number
  backlog(): { events: number; bytes: number }
  /** Messages not delivered to a client, by reason (broker/flow). */
  dropped(): Readonly<Record<string, number>>
}

export interface BrokerMetrics {
  readonly registry: Registry
  /** One write of captured events to Redis: its oldest event's capture time. */
  written(oldestTs: number): void
  redisReconnect(): void
}

export function createBrokerMetrics(gauges: BrokerGauges): BrokerMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })

  new Gauge({
    name: 'mqfn_broker_connections',
    help: 'MQTT connections open on this broker',
    registers: [registry],
    collect() {
      this.set(gauges.connections())
    },
  })
  // counters that show plain numbers the capture path bumps; collect() runs before each read
  const counted = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset()
        this.inc(read())
      },
    })
  new Counter({
    name: 'mqfn_broker_events_captured_total',
    help: 'Lifecycle events captured, by event type',
    labelNames: ['type'],
    registers: [registry],
    collect() {
      const now = gauges.captured()
      this.reset()
      for (const type of EVENT_TYPES) this.inc({ type }, now[type] ?? 0)
    },
  })
  new Counter({
    name: 'mqfn_broker_messages_dropped_total',
    help: 'Messages not delivered to a client past its bounds, by reason (docs/security.md "Limits")',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const now = gauges.dropped()
      this.reset()
      for (const [reason, count] of Object.entries(now)) this.inc({ reason }, count)
    },
  })
  counted('mqfn_broker_connects_total', 'Sessions established (CONNACK accepted)', () => gauges.captured().clientConnected ?? 0)
  counted('mqfn_broker_auth_failures_total', 'Refused logins (connectionError events with reason not-authorized, summarised ones included)', gauges.authFailures)
  counted('mqfn_broker_connect_rate_refused_total', 'Connections closed by connectRatePerIp before anything was read (summarised, never an event each)', gauges.connectRateRefused)
  counted('mqfn_broker_connection_errors_summarised_total', 'Connection errors past connectionErrorsPerIp, counted into summary events instead of captured each', gauges.connectionErrorsSummarised)
  new Gauge({
    name: 'mqfn_broker_backlog_events',
    help: 'Captured events held in memory, not yet in Redis',
    registers: [registry],
    collect() {
      this.set(gauges.backlog().events)
    },
  })
  new Gauge({
    name: 'mqfn_broker_backlog_bytes',
    help: 'Bytes of captured events held in memory, not yet in Redis',
    registers: [registry],
    collect() {
      this.set(gauges.backlog().bytes)
    },
  })
  const latency = new Histogram({
    name: 'mqfn_broker_capture_latency_seconds',
    help: 'Per write to Redis: from the capture of its oldest event to Redis holding it (the slowest event of that write)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [registry],
  })
  const reconnects = new Counter({ name: 'mqfn_broker_redis_reconnects_total', help: 'Reconnection attempts of the broker\'s Redis connection', registers: [registry] })

  return {
    registry,
    written: (oldestTs) => latency.observe(Math.max(0, Date.now() - oldestTs) / 1000),
    redisReconnect: () => reconnects.inc(),
  }
}

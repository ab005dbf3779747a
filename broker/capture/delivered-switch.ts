import type { Redis } from 'ioredis'
import { hasDemand } from '../../common/event-demand.ts'
import type { Logger } from '../../common/logger.ts'
import type { BrokerConfig } from '../config.ts'

type CaptureDelivered = BrokerConfig['captureDelivered']

/** How often `auto` asks Redis whether some worker handles `delivered`. */
const POLL_MS = 1000

export interface DeliveredSwitch {
  /** Whether `delivered` events are captured now. */
  readonly on: boolean
  close(): void
}

/*
 * `delivered` doubles the events of every QoS 1/2 message, and without a handler
 * for it the workers only log it. `auto` captures it while some worker advertises a
 * `delivered` handler (common/event-demand.ts), learnt within a second; `always`
 * and `never` decide up front. The first answer is read before the listeners open.
 */
export async function createDeliveredSwitch(mode: CaptureDelivered, redis: Redis, prefix: string, log: Logger): Promise<DeliveredSwitch> {
  if (mode !== 'auto') return { on: mode === 'always', close() {} }
  let on = await hasDemand(redis, prefix, 'delivered').catch(() => true)
  let polling = false
  const timer = setInterval(() => {
    if (polling) return
    polling = true
    hasDemand(redis, prefix, 'delivered')
      .then((now) => {
        if (now !== on) log.info({ captureDelivered: now }, now ? 'a worker handles delivered: capturing delivered events' : 'no worker handles delivered any more: not capturing delivered events')
        on = now
      })
      // Redis unreachable: keep the last answer; captures wait for Redis anyway
      .catch(() => {})
      .finally(() => { polling = false })
  }, POLL_MS)
  timer.unref()
  return {
    get on() { return on },
    close: () => clearInterval(timer),
  }
}

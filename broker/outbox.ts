import { Worker, type ConnectionOptions } from 'bullmq'
import type { Aedes } from 'aedes'
import { OUTBOX_QUEUE, type OutboxJobData } from '../common/queues.ts'
import type { Logger } from '../common/logger.ts'
import { throttled } from '../common/throttle.ts'

/**
 * Delivers what handlers publish with ctx.publish. The messages wait in Redis, so
 * they survive a broker restart; whichever broker takes a job publishes it, and a
 * broker cluster's shared emitter carries it to subscribers on the others.
 */
export function startOutbox(aedes: Aedes, connection: ConnectionOptions, prefix: string, concurrency: number, log: Logger): Worker<OutboxJobData> {
  const worker = new Worker<OutboxJobData>(
    OUTBOX_QUEUE,
    async (job) => {
      const { topic, payload, qos, retain } = job.data
      await new Promise<void>((resolve, reject) => {
        aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload, 'base64'), qos, retain, dup: false },
          (err?: Error | null) => (err ? reject(err) : resolve()),
        )
      })
    },
    { connection, prefix, concurrency },
  )
  worker.on('error', throttled(10_000, (suppressed, err) => log.error({ err, suppressed }, 'outbox worker error')))
  worker.on('failed', (job, err) => log.warn({ err, topic: job?.data.topic }, 'outbox publish failed'))
  return worker
}

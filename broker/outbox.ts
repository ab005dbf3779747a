import { Worker, type ConnectionOptions } from 'bullmq'
import type { Aedes, PublishPacket } from 'aedes'
import { OUTBOX_QUEUE, type OutboxJobData, type OutboxProperties } from '../common/queues.ts'
import type { Logger } from '../common/logger.ts'
import { throttled } from '../common/throttle.ts'

/** The outbox job's properties as mqtt-packet writes them (correlation data as bytes). */
function packetProperties(p: OutboxProperties): NonNullable<PublishPacket['properties']> {
  const { correlationData, ...rest } = p
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
}

/**
 * Delivers what handlers publish with ctx.publish. The messages wait in Redis, so
 * they survive a broker restart; whichever broker takes a job publishes it, and a
 * broker cluster's shared emitter carries it to subscribers on the others. MQTT 5
 * properties go with the message; aedes writes them only to MQTT 5 subscribers.
 */
export function startOutbox(aedes: Aedes, connection: ConnectionOptions, prefix: string, concurrency: number, log: Logger): Worker<OutboxJobData> {
  const worker = new Worker<OutboxJobData>(
    OUTBOX_QUEUE,
    async (job) => {
      const { topic, payload, qos, retain, properties } = job.data
      const packet: PublishPacket = { cmd: 'publish', topic, payload: Buffer.from(payload, 'base64'), qos, retain, dup: false }
      if (properties) packet.properties = packetProperties(properties)
      await new Promise<void>((resolve, reject) => {
        aedes.publish(packet, (err?: Error | null) => (err ? reject(err) : resolve()))
      })
    },
    { connection, prefix, concurrency },
  )
  worker.on('error', throttled(10_000, (suppressed, err) => log.error({ err, suppressed }, 'outbox worker error')))
  worker.on('failed', (job, err) => log.warn({ err, topic: job?.data.topic }, 'outbox publish failed'))
  return worker
}

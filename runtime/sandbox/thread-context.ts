import { MongoClient } from 'mongodb'
import type { Logger } from '../../common/logger.ts'
import { OUTBOX_QUEUE, type OutboxJobData } from '../../common/queues.ts'
import { createPublisher, type ContextDeps } from '../context.ts'
import { groupedDb } from './grouped-db.ts'
import type { ContextSettings } from './messages.ts'

/*
 * ctx inside a handler's thread: the thread holds its own MongoDB client and (from its
 * first ctx.publish) its own Redis connection, rather than proxying each call to the
 * worker over a MessagePort. A call then costs what it costs on the main thread, with
 * no extra hop and no copy of query results; the price is one connection pair per
 * handler thread (docs/handlers.md, "Isolation"). Ending the thread closes its sockets,
 * so a stopped handler's cursors and half-sent publishes go with it.
 */
export function threadContext(settings: ContextSettings, log: Logger): ContextDeps {
  // the driver connects on the first operation: a handler that never touches ctx.db opens nothing
  const mongo = new MongoClient(settings.mongoUrl, { appName: 'mqfn-handler', maxPoolSize: 16 })
  // BullMQ takes over a second to import on a busy machine: only a thread that publishes pays it
  let publish: Promise<ContextDeps['publish']> | undefined
  const lazyPublish: ContextDeps['publish'] = async (topic, payload, options) => {
    publish ??= (async () => {
      const [{ Queue }, { createRedis }] = await Promise.all([import('bullmq'), import('../../common/redis.ts')])
      const connection = createRedis(settings.redisUrl, 'mqfn-handler')
      connection.on('error', () => {})
      const outbox = new Queue<OutboxJobData>(OUTBOX_QUEUE, { connection, prefix: settings.prefix })
      outbox.on('error', () => {})
      return createPublisher(outbox)
    })()
    return (await publish)(topic, payload, options)
  }
  // concurrent handler runs' insertOne calls share a round trip (grouped-db.ts)
  return { db: groupedDb(mongo.db(settings.database)), log, publish: lazyPublish }
}

import { MongoClient } from 'mongodb'
import { errorMessage, mqfnError } from '../common/errors.ts'
import { redactUrl } from '../common/redis.ts'
import type { WorkerConfig } from './config.ts'

/*
 * The MongoDB connection of the processes that read the worker's configuration (the
 * worker, `mqfn dlq`): one place decides how an unreachable server is reported.
 */

type MongoConfig = Pick<WorkerConfig, 'mongoUrl' | 'database' | 'connectTimeoutMs'>

/** Connects and pings, so a wrong URL fails at start with MQFN_ERR_MONGO_UNREACHABLE instead of on first use. */
export async function connectMongo(config: Readonly<MongoConfig>, appName = 'mqfn-worker'): Promise<MongoClient> {
  const client = new MongoClient(config.mongoUrl, { serverSelectionTimeoutMS: config.connectTimeoutMs, appName })
  try {
    await client.connect()
    await client.db('admin').command({ ping: 1 })
  } catch (err) {
    await client.close().catch(() => {})
    throw mqfnError('MQFN_ERR_MONGO_UNREACHABLE', redactUrl(config.mongoUrl), errorMessage(err))
  }
  return client
}

/** `database` when set, else the URL's path, else `mqfn`. */
export function databaseName(config: Readonly<MongoConfig>): string {
  if (config.database) return config.database
  const path = new URL(config.mongoUrl.replace(/^mongodb(\+srv)?:/, 'http:')).pathname.slice(1)
  return path || 'mqfn'
}

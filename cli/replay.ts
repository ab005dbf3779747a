import { Queue } from 'bullmq'
import { EVENT_TYPES, isEventType } from '../common/event-types.ts'
import { errorMessage, isMqfnError } from '../common/errors.ts'
import { queueName } from '../common/queues.ts'
import { assertRedisReachable, createRedis } from '../common/redis.ts'
import { validateTopicFilter } from '../common/topic.ts'
import { loadWorkerConfig } from '../runtime/config.ts'
import { connectMongo, databaseName } from '../runtime/mongo.ts'
import { replayEvents, type ReplayFilter } from '../runtime/redelivery/index.ts'
import { HELP, parseCommand, parseTime, UsageError } from './args.ts'

/*
 * `mqfn replay`: re-enqueue events from the event log. Exit status: 0 done,
 * 1 operational error, 2 usage error.
 */

export const REPLAY_USAGE = `usage: mqfn replay --type <event> [--topic <filter>] [--client <id>] [--since <time>] [--until <time>] [--handler <name>] [--attempts <n>] [--dry-run]

  --type <event>     the event type to replay (${EVENT_TYPES.join(', ')})
  --topic <filter>   MQTT topic filter, + and # allowed (published, delivered, ...)
  --client <id>      one client's events
  --since, --until   an ISO date or a time ago (30m, 2h, 7d)
  --handler <name>   only this handler runs again (as retries); without it, every handler of the type does
  --attempts <n>     with --handler: attempts of each replayed event (default 1)
  --dry-run          count only

Configured as mqfn worker (REDIS_URL, MONGO_URL, MQFN_DATABASE, MQFN_PREFIX).`

function parse(args: readonly string[], now: Date): { filter: ReplayFilter; handler?: string; attempts: number; dryRun: boolean; config?: string } | undefined {
  const parsed = parseCommand('replay', REPLAY_USAGE, {
    args: [...args],
    options: {
      ...HELP, type: { type: 'string' }, topic: { type: 'string' }, client: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' },
      handler: { type: 'string' }, attempts: { type: 'string' }, 'dry-run': { type: 'boolean' }, config: { type: 'string' },
    },
  })
  if (!parsed) return undefined
  const v = parsed.values
  if (v.type === undefined || !isEventType(v.type)) throw new UsageError(`--type: expected an event type (${EVENT_TYPES.join(', ')}), got ${JSON.stringify(v.type ?? null)}`)
  const filter: ReplayFilter = { type: v.type }
  if (v.topic !== undefined) {
    const problem = validateTopicFilter(v.topic)
    if (problem) throw new UsageError(`--topic: ${problem}`)
    filter.topic = v.topic
  }
  if (v.client !== undefined) filter.clientId = v.client
  if (v.since !== undefined) filter.since = parseTime('--since', v.since, now)
  if (v.until !== undefined) filter.until = parseTime('--until', v.until, now)
  if (v.handler !== undefined && v.handler !== v.type && !v.handler.startsWith(`${v.type}/`)) {
    throw new UsageError(`--handler: ${JSON.stringify(v.handler)} does not handle ${v.type} events (expected ${v.type} or ${v.type}/<name>)`)
  }
  const attempts = v.attempts === undefined ? 1 : Number(v.attempts)
  if (!Number.isInteger(attempts) || attempts < 1) throw new UsageError(`--attempts: expected a positive integer, got ${JSON.stringify(v.attempts)}`)
  return { filter, ...(v.handler !== undefined ? { handler: v.handler } : {}), attempts, dryRun: v['dry-run'] === true, ...(v.config ? { config: v.config } : {}) }
}

export async function replayMain(args: readonly string[]): Promise<number> {
  const command = parse(args, new Date())
  if (!command) return 0
  try {
    const config = loadWorkerConfig({ file: command.config })
    await assertRedisReachable(config.redisUrl, config.connectTimeoutMs)
    const mongo = await connectMongo(config, 'mqfn-replay')
    const redis = createRedis(config.redisUrl, 'mqfn-replay')
    const queue = new Queue(queueName(command.filter.type), { connection: redis, prefix: config.prefix })
    queue.on('error', () => {})
    const started = Date.now()
    let lastPrint = 0
    try {
      const result = await replayEvents(mongo.db(databaseName(config)), command.filter, async (jobs) => void (await queue.addBulk(jobs)), {
        ...(command.handler ? { handler: command.handler } : {}),
        attempts: command.attempts,
        dryRun: command.dryRun,
        onProgress: (done, scanned, total) => {
          if (!process.stderr.isTTY || Date.now() - lastPrint < 200) return
          lastPrint = Date.now()
          const seconds = (Date.now() - started) / 1000
          const rate = scanned / Math.max(seconds, 0.001)
          const eta = rate > 0 ? Math.ceil((total - scanned) / rate) : 0
          process.stderr.write(`\r${command.dryRun ? 'counted' : 'replayed'} ${done} (scanned ${scanned} of ${total}, ${Math.round(rate)}/s, ETA ${eta} s)   `)
        },
      })
      if (process.stderr.isTTY) process.stderr.write('\n')
      const what = `${result.replayed} ${command.filter.type} events${command.handler ? ` to ${command.handler}` : ''}`
      console.log(command.dryRun ? `would replay ${what}` : `replayed ${what}`)
      if (result.invalid > 0) console.log(`skipped ${result.invalid} stored events that no longer pass validation`)
      return 0
    } finally {
      await queue.close()
      redis.disconnect()
      await mongo.close()
    }
  } catch (err) {
    process.stderr.write(`mqfn replay: ${isMqfnError(err) ? `${err.code}: ` : ''}${errorMessage(err)}\n`)
    return 1
  }
}

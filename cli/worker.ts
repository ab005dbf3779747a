import { workerMain } from '../runtime/main.ts'
import { HELP, parseCommand } from './args.ts'

export const WORKER_USAGE = `usage: mqfn worker [--events published,clientConnected] [--concurrency 8 | published=16,*=4] [--config file.json]

runs the handlers in functions/ (MQFN_FUNCTIONS_DIR) on the events in Redis (REDIS_URL),
and writes the event log, presence and dead letters to MongoDB (MONGO_URL).

  --events <a,b>        only these event queues (wins over MQFN_EVENTS)
  --concurrency <spec>  jobs at once per event queue: 8, or published=16,*=4 (wins over MQFN_CONCURRENCY)
  --config <file>       a JSON file with the settings in camelCase; the environment wins

Runs until SIGTERM or SIGINT, then lets running jobs finish (MQFN_DRAIN_TIMEOUT_MS) and exits 0.`

/** `mqfn worker`: `undefined` while it runs (the process stays up). */
export async function workerCommand(args: readonly string[]): Promise<number | undefined> {
  const parsed = parseCommand('worker', WORKER_USAGE, {
    args: [...args],
    options: { ...HELP, events: { type: 'string' }, concurrency: { type: 'string' }, config: { type: 'string' } },
  })
  if (!parsed) return 0
  const { events, concurrency, config } = parsed.values
  await workerMain(config, { ...(events !== undefined ? { events } : {}), ...(concurrency !== undefined ? { concurrency } : {}) })
  return undefined
}

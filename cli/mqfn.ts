import { fileURLToPath } from 'node:url'
import { brokerMain } from '../broker/main.ts'
import { workerMain } from '../runtime/main.ts'
import { buildMain } from './build.ts'
import { dlqMain } from './dlq.ts'
import { devMain } from './dev.ts'
import { invokeMain } from './invoke.ts'
import { newMain } from './new.ts'
import { replayMain } from './replay.ts'
import { userMain } from './user.ts'

const USAGE = `usage: mqfn <command> [--config file.json]
       mqfn worker [--events published,clientConnected] [--concurrency 8 | published=16,*=4]

commands:
  broker   run the MQTT broker (aedes); every lifecycle event goes to BullMQ queues in Redis
  worker   run the handlers in functions/ on those events; writes the event log to MongoDB
  dev      start Redis and FerretDB if needed, then a broker and a worker
  build    compile functions/ ahead of time for a worker that compiles nothing (mqfn build --help)
  dlq      list, show, retry or purge dead letters (mqfn dlq --help)
  new      write a typed handler file: mqfn new <event> [name]
  invoke   run one handler once on a sample or recorded event (mqfn invoke --help)
  replay   re-enqueue events from the event log for the handlers (mqfn replay --help)
  user     add, remove or list users in the users file (mqfn user --help)

Configuration comes from the environment (REDIS_URL, MONGO_URL, MQFN_*) and an
optional JSON file (--config or MQFN_CONFIG). See README.md.`

function configFlag(args: string[]): string | undefined {
  const i = args.indexOf('--config')
  if (i === -1) return undefined
  const file = args[i + 1]
  if (!file) {
    process.stderr.write('mqfn: --config needs a file name\n')
    process.exit(2)
  }
  return file
}

/** `--events a,b` and `--concurrency spec` of mqfn worker: values that win over MQFN_EVENTS / MQFN_CONCURRENCY. */
function workerFlags(args: string[]): Record<string, unknown> {
  const flags: Record<string, unknown> = {}
  for (const [flag, key] of [['--events', 'events'], ['--concurrency', 'concurrency']] as const) {
    const i = args.indexOf(flag)
    if (i === -1) continue
    const value = args[i + 1]
    if (value === undefined || value.startsWith('--')) {
      process.stderr.write(`mqfn worker: ${flag} needs a value (${flag === '--events' ? 'event names, comma-separated' : 'a number, or <event>=<n>,*=<n>'})\n`)
      process.exit(2)
    }
    flags[key] = value
  }
  return flags
}

// handler files are compiled with inline source maps: stack traces then name functions/*.ts lines
process.setSourceMapsEnabled(true)

// One-shot commands exit as soon as they return, rather than when the drivers' idle
// sockets and timers let go; their result is the exit status.
const ONE_SHOT = new Map<string, (args: string[]) => Promise<number>>([
  ['dlq', dlqMain],
  ['new', newMain],
  ['invoke', invokeMain],
  ['replay', replayMain],
  ['user', userMain],
  ['build', buildMain],
])

const [command, ...rest] = process.argv.slice(2)
const oneShot = command !== undefined ? ONE_SHOT.get(command) : undefined
if (oneShot) process.exit(await oneShot(rest))
switch (command) {
  case 'broker':
    await brokerMain(configFlag(rest))
    break
  case 'worker':
    await workerMain(configFlag(rest), workerFlags(rest))
    break
  case 'dev':
    await devMain(fileURLToPath(import.meta.url))
    break
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    console.log(USAGE)
    break
  default:
    process.stderr.write(`mqfn: unknown command "${command}"\n${USAGE}\n`)
    process.exit(2)
}

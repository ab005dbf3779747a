import { fileURLToPath } from 'node:url'
import { brokerMain } from '../broker/main.ts'
import { workerMain } from '../runtime/main.ts'
import { dlqMain } from './dlq-cli.ts'
import { devMain } from './dev.ts'
import { invokeMain } from './invoke-cli.ts'
import { newMain } from './new-cli.ts'
import { replayMain } from './replay-cli.ts'

const USAGE = `usage: mqfn <command> [--config file.json]

commands:
  broker   run the MQTT broker (aedes); every lifecycle event goes to BullMQ queues in Redis
  worker   run the handlers in functions/ on those events; writes the event log to MongoDB
  dev      start Redis and FerretDB if needed, then a broker and a worker
  dlq      list, show, retry or purge dead letters (mqfn dlq --help)
  new      write a typed handler file: mqfn new <event> [name]
  invoke   run one handler once on a sample or recorded event (mqfn invoke --help)
  replay   re-enqueue events from the event log for the handlers (mqfn replay --help)

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

// handler files are compiled with inline source maps: stack traces then name functions/*.ts lines
process.setSourceMapsEnabled(true)

const [command, ...rest] = process.argv.slice(2)
switch (command) {
  case 'broker':
    await brokerMain(configFlag(rest))
    break
  case 'worker':
    await workerMain(configFlag(rest))
    break
  case 'dlq':
    // a one-shot command: exit now rather than when the drivers' idle sockets and timers let go
    process.exit(await dlqMain(rest))
  case 'new':
    process.exit(await newMain(rest))
  case 'invoke':
    // a one-shot command: exit now rather than when the drivers' idle sockets and timers let go
    process.exit(await invokeMain(rest))
  case 'replay':
    process.exit(await replayMain(rest))
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

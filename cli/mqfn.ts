import { fileURLToPath } from 'node:url'
import { UsageError, write } from './args.ts'
import { brokerCommand } from './broker.ts'
import { buildMain } from './build.ts'
import { devCommand } from './dev.ts'
import { dlqMain } from './dlq.ts'
import { invokeMain } from './invoke.ts'
import { newMain } from './new.ts'
import { replayMain } from './replay.ts'
import { userMain } from './user.ts'
import { workerCommand } from './worker.ts'

/*
 * `mqfn <command>`: the package's bin. Each command is a file of cli/ that parses its
 * own arguments (cli/args.ts) and resolves to its exit status, or to `undefined` while
 * it keeps running (broker, worker, dev). A usage error anywhere exits 2, before
 * anything starts or connects.
 */

const script = fileURLToPath(import.meta.url)

const COMMANDS: Record<string, { summary: string; run: (args: readonly string[]) => Promise<number | undefined> }> = {
  broker: { summary: 'run the MQTT broker (aedes); every lifecycle event goes to BullMQ queues in Redis', run: brokerCommand },
  worker: { summary: 'run the handlers in functions/ on those events; writes the event log to MongoDB', run: workerCommand },
  dev: { summary: 'start Redis and FerretDB if needed, then a broker and a worker; reload on save', run: (args) => devCommand(args, script) },
  build: { summary: 'compile functions/ ahead of time for a worker that compiles nothing', run: buildMain },
  dlq: { summary: 'list, show, retry or purge dead letters', run: dlqMain },
  new: { summary: 'write a typed handler file: mqfn new <event> [name]', run: newMain },
  invoke: { summary: 'run one handler once on a sample or recorded event', run: invokeMain },
  replay: { summary: 're-enqueue events from the event log for the handlers', run: replayMain },
  user: { summary: 'add, remove or list users in the users file', run: userMain },
}

export const USAGE = `usage: mqfn <command> [options]      (mqfn <command> --help for its options)

commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`).join('\n')}

Configuration comes from the environment (REDIS_URL, MONGO_URL, MQFN_*) and an
optional JSON file (--config or MQFN_CONFIG). See README.md.

exit status: 0 done (or stopped by SIGTERM/SIGINT), 1 operational error (a server
unreachable, bad configuration, a handler failed), 2 usage error.`

// handler files are compiled with inline source maps: stack traces then name functions/*.ts lines
process.setSourceMapsEnabled(true)

const [name, ...rest] = process.argv.slice(2)
if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
  await write(process.stdout, `${USAGE}\n`)
  process.exit(0)
}
const command = COMMANDS[name]
if (!command) {
  await write(process.stderr, `mqfn: unknown command "${name}"\n${USAGE}\n`)
  process.exit(2)
}
try {
  // One-shot commands exit as soon as they return, rather than when the drivers' idle
  // sockets and timers let go; their result is the exit status.
  const code = await command.run(rest)
  if (code !== undefined) process.exit(code)
} catch (err) {
  if (!(err instanceof UsageError)) throw err
  const what = err.command ?? name
  await write(process.stderr, `mqfn ${what}: ${err.message}\nrun "mqfn ${what.split(' ')[0]} --help" for usage\n`)
  process.exit(2)
}

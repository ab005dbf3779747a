import { fileURLToPath } from 'node:url'
import { isMqfnError } from '../common/errors.ts'
import { UsageError, write } from './args.ts'

/*
 * `mqfn <command>`: the package's bin. Each command is a file of cli/ that parses its
 * own arguments (cli/args.ts) and resolves to its exit status, or to `undefined` while
 * it keeps running (broker, worker, dev). A usage error anywhere exits 2, before
 * anything starts or connects.
 */

const script = fileURLToPath(import.meta.url)

// Each command's module is imported only when it runs: `mqfn --help` or `mqfn new` need
// neither aedes nor BullMQ nor the MongoDB driver (the build splits them into chunks).
const COMMANDS: Record<string, { summary: string; run: (args: readonly string[]) => Promise<number | undefined> }> = {
  broker: { summary: 'run the MQTT broker (aedes); every lifecycle event goes to BullMQ queues in Redis', run: async (args) => (await import('./broker.ts')).brokerCommand(args) },
  worker: { summary: 'run the handlers in functions/ on those events; writes the event log to MongoDB', run: async (args) => (await import('./worker.ts')).workerCommand(args) },
  dev: { summary: 'start Redis and FerretDB if needed, then a broker and a worker; reload on save', run: async (args) => (await import('./dev.ts')).devCommand(args, script) },
  build: { summary: 'compile functions/ ahead of time for a worker that compiles nothing', run: async (args) => (await import('./build.ts')).buildMain(args) },
  dlq: { summary: 'list, show, retry or purge dead letters', run: async (args) => (await import('./dlq.ts')).dlqMain(args) },
  new: { summary: 'write a typed handler file: mqfn new <event> [name]', run: async (args) => (await import('./new.ts')).newMain(args) },
  invoke: { summary: 'run one handler once on a sample or recorded event', run: async (args) => (await import('./invoke.ts')).invokeMain(args) },
  replay: { summary: 're-enqueue events from the event log for the handlers', run: async (args) => (await import('./replay.ts')).replayMain(args) },
  user: { summary: 'add, remove or list users in the users file', run: async (args) => (await import('./user.ts')).userMain(args) },
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
  if (err instanceof UsageError) {
    const what = err.command ?? name
    await write(process.stderr, `mqfn ${what}: ${err.message}\nrun "mqfn ${what.split(' ')[0]} --help" for usage\n`)
    process.exit(2)
  }
  // a coded error is the user's to fix (a setting, a service): its line, not a stack
  if (!isMqfnError(err)) throw err
  await write(process.stderr, `mqfn ${name}: ${err.code}: ${err.message}\n`)
  process.exit(1)
}

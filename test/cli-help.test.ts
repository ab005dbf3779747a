import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { BIN } from './helpers/processes.ts'

/*
 * Every command and subcommand of the CLI answers --help and -h with its usage on stdout
 * and exit 0, without starting anything; an unknown flag exits 2 naming it. The servers
 * it would use point nowhere, so a command that started anyway would fail or hang, and
 * it runs in an empty directory, so `mqfn dev` would leave its .mqfn/dev/ behind.
 */

/** Runs them four at a time (each is a node start-up that loads the whole bundle). */
async function runAll(cwd: string, lines: readonly (readonly string[])[]): Promise<Run[]> {
  const results: Run[] = []
  for (let i = 0; i < lines.length; i += 4) results.push(...(await Promise.all(lines.slice(i, i + 4).map((args) => run(cwd, args)))))
  return results
}

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

function run(cwd: string, args: readonly string[]): Promise<Run> {
  const started = Date.now()
  return new Promise((resolve) => {
    const env = { ...process.env, REDIS_URL: 'redis://127.0.0.1:1', MONGO_URL: 'mongodb://127.0.0.1:1/x', MQFN_AUTH: 'none', MQFN_ADMIN_PORT: '0', MQFN_MQTT_PORT: '0', MQFN_WS_PORT: '0' }
    execFile(process.execPath, [BIN, ...args], { cwd, env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr, ms: Date.now() - started })
    })
  })
}

const COMMANDS: [args: string[], usage: string][] = [
  [['broker'], 'usage: mqfn broker '],
  [['worker'], 'usage: mqfn worker '],
  [['dev'], 'usage: mqfn dev'],
  [['build'], 'usage: mqfn build '],
  [['new'], 'usage: mqfn new '],
  [['invoke'], 'usage: mqfn invoke '],
  [['replay'], 'usage: mqfn replay '],
  [['dlq'], 'usage: mqfn dlq '],
  ...(['list', 'show', 'retry', 'purge'] as const).map((sub): [string[], string] => [['dlq', sub], 'usage: mqfn dlq ']),
  [['user'], 'usage: mqfn user '],
  ...(['add', 'remove', 'list'] as const).map((sub): [string[], string] => [['user', sub], 'usage: mqfn user ']),
]

test('every command and subcommand answers --help and -h with its usage, exit 0, and starts nothing', async (t) => {
  const cwd = await mkdtemp(join(tmpdir(), 'mqfn-help-'))
  t.after(() => rm(cwd, { recursive: true, force: true }))
  // -h is the same option as --help to parseArgs: once per command is enough to show it is declared
  const lines = COMMANDS.flatMap(([args, usage]) => (args.length === 1 ? ['--help', '-h'] : ['--help']).map((flag) => ({ args: [...args, flag], usage })))
  const results = await runAll(cwd, lines.map((l) => l.args))
  for (const [i, { args, usage }] of lines.entries()) {
    {
      const r = results[i]!
      const line = `mqfn ${args.join(' ')}`
      assert.equal(r.code, 0, `${line}: ${r.stderr}`)
      assert.equal(r.stderr, '', line)
      assert.ok(r.stdout.startsWith(usage), `${line}: ${r.stdout}`)
      // nothing but the usage: no log line of a broker, worker or service
      assert.doesNotMatch(r.stdout, /"level":\d|^mqfn dev:/m, line)
    }
  }
  assert.equal(existsSync(join(cwd, '.mqfn')), false, 'mqfn dev --help wrote no data directory')
  assert.equal(existsSync(join(cwd, 'functions')), false, 'mqfn new --help wrote no handler')
})

test('the top-level usage lists every command and the exit statuses', async () => {
  for (const args of [[], ['--help'], ['-h'], ['help']]) {
    const r = await run(process.cwd(), args)
    assert.equal(r.code, 0)
    for (const [[command]] of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${command} +\\S`, 'm'), `${command} in the usage`)
    assert.match(r.stdout.replace(/\s+/g, ' '), /exit status: 0 done .*, 1 operational error .*, 2 usage error/)
  }
  const unknown = await run(process.cwd(), ['frobnicate'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /^mqfn: unknown command "frobnicate"\nusage: mqfn <command>/)
})

test('an unknown flag exits 2 naming it, for every command, before anything starts', async (t) => {
  const cwd = await mkdtemp(join(tmpdir(), 'mqfn-flags-'))
  t.after(() => rm(cwd, { recursive: true, force: true }))
  const results = await runAll(cwd, COMMANDS.map(([args]) => [...args, '--frobnicate']))
  for (const [i, [args]] of COMMANDS.entries()) {
    const r = results[i]!
    const line = `mqfn ${args.join(' ')} --frobnicate`
    assert.equal(r.code, 2, `${line}: ${r.stdout}${r.stderr}`)
    assert.equal(r.stdout, '', line)
    assert.equal(r.stderr, `mqfn ${args.join(' ')}: unknown option --frobnicate\nrun "mqfn ${args[0]} --help" for usage\n`, line)
  }
  // a value flag without its value, and a flag given twice
  assert.equal((await run(cwd, ['worker', '--concurrency'])).stderr, 'mqfn worker: --concurrency needs a value\nrun "mqfn worker --help" for usage\n')
  assert.equal((await run(cwd, ['replay', '--type', 'published', '--type', 'delivered'])).stderr, 'mqfn replay: --type is given twice\nrun "mqfn replay --help" for usage\n')
  assert.equal(existsSync(join(cwd, '.mqfn')), false)
})

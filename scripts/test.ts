import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { basename, join } from 'node:path'
import { runInstaller } from './install.ts'
import { findGoTool, installScript, startServices } from './services.ts'
import { typecheck } from './typecheck.ts'

/*
 * `npm test`: type-checks, builds the CLI bundle (process tests run it like a user would),
 * installs the tools the selected tests use that npm does not (kustomize, for
 * test/deploy-artifacts.test.ts), starts Redis and FerretDB once (unless REDIS_URL /
 * MONGO_URL are set; installed if missing), then runs every test/*.test.ts with node's
 * test runner. Each test file uses its own queue prefix and database, so files run side
 * by side. Extra arguments pass through (e.g. `npm test -- test/routing.test.ts`).
 */
const args = process.argv.slice(2)
const files = args.filter((a) => !a.startsWith('-'))
const flags = args.filter((a) => a.startsWith('-'))
const selected = files.length > 0 ? files : readdirSync('test').filter((f) => f.endsWith('.test.ts')).sort().map((f) => join('test', f))

// MQFN_TEST_NO_TYPECHECK=1 skips the type check while other work in the tree is half done
if (process.env.MQFN_TEST_NO_TYPECHECK !== '1' && !(await typecheck())) process.exit(1)
const build = spawn('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })
const built = await new Promise<number | null>((resolve) => build.on('exit', resolve))
if (built !== 0) process.exit(built ?? 1)

// the same tool the CI uses, built once from the Go module proxy: a fresh clone passes as CI does
if (selected.some((f) => basename(f) === 'deploy-artifacts.test.ts') && !findGoTool('kustomize')) {
  await runInstaller(installScript('install-validators.sh'), 'installing kustomize')
}

const services = await startServices()
/*
 * The runner gets a process group of its own: a test file that times out is killed
 * before its `t.after` hooks run, and the brokers and workers it started would live on
 * (reparented, so no process tree finds them). They keep the group, so killing it at
 * the end reaps them. Ctrl-C reaches only the terminal's foreground group: forwarded.
 */
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...flags, ...selected], {
  stdio: 'inherit',
  detached: true,
  env: { ...process.env, REDIS_URL: services.redisUrl, MONGO_URL: services.mongoUrl },
})
const killGroup = (signal: NodeJS.Signals) => {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal)
  } catch {
    // the group is already empty
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => killGroup(signal))
const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
killGroup('SIGKILL')
await services.stop()
process.exit(code ?? 1)

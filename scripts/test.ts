import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startServices } from './services.ts'

/*
 * `npm test`: type-checks, builds the CLI bundle (process tests run it like a user would),
 * starts Redis and FerretDB once (unless REDIS_URL / MONGO_URL are set), then runs
 * every test/*.test.ts with node's test runner. Each test file uses its own queue
 * prefix and database, so files run side by side. Extra arguments pass through
 * (e.g. `npm test -- test/routing.test.ts`).
 */
const args = process.argv.slice(2)
const files = args.filter((a) => !a.startsWith('-'))
const flags = args.filter((a) => a.startsWith('-'))
const selected = files.length > 0 ? files : readdirSync('test').filter((f) => f.endsWith('.test.ts')).sort().map((f) => join('test', f))

// MQFN_TEST_NO_TYPECHECK=1 skips the type check while other work in the tree is half done
for (const script of process.env.MQFN_TEST_NO_TYPECHECK === '1' ? ['build'] : ['typecheck', 'build']) {
  const step = spawn('npm', ['run', '--silent', script], { stdio: 'inherit' })
  const code = await new Promise<number | null>((resolve) => step.on('exit', resolve))
  if (code !== 0) process.exit(code ?? 1)
}

const services = await startServices()
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...flags, ...selected], {
  stdio: 'inherit',
  env: { ...process.env, REDIS_URL: services.redisUrl, MONGO_URL: services.mongoUrl },
})
const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
await services.stop()
process.exit(code ?? 1)

import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'

/*
 * The type check of `npm test`: `tsc --noEmit` over the project (tsconfig.json), which
 * includes functions/, so a handler a user dropped there is checked too. When that is what
 * fails, a line says so and names the file: otherwise a newcomer pasting an example sees
 * `npm test` stop with no test run and no hint that their file, not the project, is why.
 */
export async function typecheck(): Promise<boolean> {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const child = spawn(process.execPath, [tsc, '--noEmit', '--pretty', 'false'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString()
    process.stdout.write(chunk)
  })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code === 0) return true
  const handlerFiles = new Set([...out.matchAll(/^(functions\/[^(\s]+)\(\d+,\d+\): error TS/gm)].map((m) => m[1]))
  for (const file of handlerFiles) {
    process.stderr.write(`npm test type-checks functions/ too (tsconfig.json includes it): ${file} has the type errors above; fix it, or run with MQFN_TEST_NO_TYPECHECK=1\n`)
  }
  process.stderr.write('type check failed: no test was run\n')
  return false
}

import { existsSync } from 'node:fs'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join, relative, resolve, sep } from 'node:path'
import { mqfnError, type MqfnError } from '../common/errors.ts'
import { typeCheckFunctions } from '../runtime/typecheck.ts'
import { loadWorkerConfig } from '../runtime/config.ts'
import { apiEntry, compile, importHandler, PREBUILT_MANIFEST, type PrebuiltManifest } from '../runtime/load.ts'
import { scanFunctions } from '../runtime/scan.ts'
import { HELP, parseCommand } from './args.ts'

/*
 * `mqfn build`: compiles the handler files once, ahead of time (the container
 * image runs it at build time), so a worker compiles nothing at start and its
 * image needs neither esbuild nor the handlers' TypeScript sources.
 * Exit status: 0 built, 1 a handler file failed, 2 usage error.
 */

export const BUILD_USAGE = `usage: mqfn build [--out <dir>] [--functions <dir>]

compiles every handler under the functions directory (--functions, else
MQFN_FUNCTIONS_DIR, default functions) into --out (default dist/functions), one
bundled .mjs per handler, and writes ${PREBUILT_MANIFEST} beside them. Each file is
also imported and its exports checked, exactly as a worker does at start.

Point a worker at the result (MQFN_FUNCTIONS_DIR=dist/functions) and it loads the
compiled files as they are: nothing is compiled at start. Imports of npm packages
stay imports: install the project's dependencies where the worker runs.`

function shown(path: string): string {
  return relative(process.cwd(), path) || path
}

function inside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent + sep)
}

/** Refuses an output directory that holds anything but an earlier build: it is emptied. */
async function checkOutDir(out: string, functionsDir: string): Promise<string | undefined> {
  if (inside(out, functionsDir) || inside(functionsDir, out)) return `--out ${shown(out)} and the functions directory ${shown(functionsDir)} must not contain each other`
  if (existsSync(join(functionsDir, PREBUILT_MANIFEST))) return `${shown(functionsDir)} is a handler build (it has ${PREBUILT_MANIFEST}), not handler sources`
  if (!existsSync(out) || existsSync(join(out, PREBUILT_MANIFEST))) return undefined
  if ((await readdir(out)).length > 0) return `--out ${shown(out)} is not empty and was not written by mqfn build; choose an empty or new directory`
  return undefined
}

export async function buildMain(argv: readonly string[]): Promise<number> {
  const parsed = parseCommand('build', BUILD_USAGE, { args: [...argv], options: { ...HELP, out: { type: 'string' }, functions: { type: 'string' } } })
  if (!parsed) return 0
  const out = resolve(parsed.values.out ?? join('dist', 'functions'))
  const functionsDir = resolve(parsed.values.functions ?? loadWorkerConfig().functionsDir)
  const refused = await checkOutDir(out, functionsDir)
  if (refused) {
    process.stderr.write(`mqfn build: ${refused}\n`)
    return 2
  }

  await rm(out, { recursive: true, force: true })
  await mkdir(out, { recursive: true })
  const scan = await scanFunctions(functionsDir)
  const errors: MqfnError[] = scan.errors.map((e) => e.error)
  const manifest: PrebuiltManifest = { v: 1, handlers: [] }
  const api = apiEntry()
  for (const file of scan.files) {
    const name = `${file.name.replace('/', '__')}.mjs`
    const source = shown(file.path)
    const compileError = await compile(file.path, join(out, name), api)
    if (compileError) {
      errors.push(compileError)
      continue
    }
    const loaded = await importHandler(file, join(out, name), source)
    if ('error' in loaded) errors.push(loaded.error)
    else manifest.handlers.push({ name: file.name, event: file.event, file: name, source })
  }
  const typeErrors = await typeCheckFunctions(functionsDir)
  if (typeErrors === undefined) process.stderr.write('mqfn build: the typescript package is not installed; handler types not checked\n')
  for (const line of typeErrors ?? []) errors.push(mqfnError('MQFN_ERR_HANDLER_TYPE', line))
  if (errors.length > 0) {
    // a partial build must not be deployed: leave nothing a worker could load
    await rm(out, { recursive: true, force: true })
    for (const e of errors) process.stderr.write(`${e.code}: ${e.message}\n`)
    process.stderr.write(`mqfn build: ${errors.length} handler file(s) failed; nothing written\n`)
    return 1
  }
  await writeFile(join(out, PREBUILT_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`)
  const names = manifest.handlers.map((h) => h.name).join(', ') || 'none'
  console.log(`built ${manifest.handlers.length} handler(s) into ${shown(out)}: ${names}`)
  return 0
}

import { extname, relative, resolve } from 'node:path'
import { apiEntry } from './load.ts'
import { scanFunctions } from './scan.ts'

/** One type error, as `file:line: message`. */
export type TypeErrorLine = string

/**
 * Type-checks the TypeScript handler files under `functionsDir` with the TypeScript
 * compiler (esbuild only strips types, so a type error would otherwise surface at run
 * time). `mqtt-functions` resolves to the runtime's own API, as when bundling. Answers
 * `undefined` when the `typescript` package is not installed (a production install
 * without dev dependencies): the caller says the check was skipped.
 */
export async function typeCheckFunctions(functionsDir: string): Promise<TypeErrorLine[] | undefined> {
  let ts: typeof import('typescript')
  try {
    ts = (await import('typescript')).default
  } catch {
    return undefined
  }
  const scan = await scanFunctions(resolve(functionsDir))
  const files = scan.files.map((f) => f.path).filter((p) => ['.ts', '.mts'].includes(extname(p)))
  if (files.length === 0) return []
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    esModuleInterop: true,
    types: ['node'],
    lib: ['lib.es2023.d.ts'],
    paths: { 'mqtt-functions': [apiEntry()] },
  })
  const mine = new Set(files)
  const lines: TypeErrorLine[] = []
  for (const d of ts.getPreEmitDiagnostics(program)) {
    // the runtime's own files are checked by its own build; report the user's
    if (!d.file || !mine.has(resolve(d.file.fileName))) continue
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0)
    lines.push(`${relative(process.cwd(), d.file.fileName)}:${line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`)
  }
  return lines
}

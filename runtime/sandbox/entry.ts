import { mkdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** The worker-thread entries: their source beside this file, their bundle beside dist/mqfn.js (and its chunks: the build keeps them in dist/). */
const ENTRIES = {
  handler: { source: './thread.ts', bundle: './handler-thread.js' },
  typecheck: { source: './typecheck-thread.ts', bundle: './typecheck-thread.js' },
} as const

const built = new Map<keyof typeof ENTRIES, Promise<URL>>()

/**
 * The module a thread starts from. In the bundle (dist/mqfn.js) it is built beside it
 * (package.json's build script). From source (tsx, the tests) it is bundled once per
 * process with esbuild, like the handlers themselves: a worker thread does not take
 * tsx's hooks from its process, and transpiling the runtime in every thread made each
 * start take seconds.
 */
export function threadEntry(name: keyof typeof ENTRIES): Promise<URL> {
  if (!import.meta.url.endsWith('.ts')) return Promise.resolve(new URL(ENTRIES[name].bundle, import.meta.url))
  let entry = built.get(name)
  if (!entry) {
    entry = (async () => {
      const source = fileURLToPath(new URL(ENTRIES[name].source, import.meta.url))
      // under the project, so the bundle's bare imports resolve from its node_modules
      const outfile = join(dirname(source), '..', '..', '.mqfn', 'build', `${name}-thread-${process.pid}.mjs`)
      await mkdir(dirname(outfile), { recursive: true })
      const { build } = await import('esbuild')
      await build({ entryPoints: [source], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'silent' })
      process.once('exit', () => void rm(outfile, { force: true }))
      return pathToFileURL(outfile)
    })()
    built.set(name, entry)
  }
  return entry
}

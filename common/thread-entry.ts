import { mkdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** A worker thread's entry: its source from the project root, and its bundle's file name in dist/. */
export interface ThreadEntry {
  name: string
  /** e.g. `runtime/sandbox/thread.ts` */
  source: string
  /** e.g. `handler-thread.js`, built beside dist/mqfn.js by package.json's build script */
  bundle: string
}

const built = new Map<string, Promise<URL>>()

/**
 * The module a thread starts from. In the bundle (dist/mqfn.js) it is built beside it
 * (package.json's build script; the bundle's chunks stay in dist/ too). From source
 * (tsx, the tests) it is bundled once per process with esbuild, like the handlers
 * themselves: a worker thread does not take tsx's hooks from its process, and
 * transpiling the runtime in every thread made each start take seconds.
 */
export function threadEntry(entry: ThreadEntry): Promise<URL> {
  if (!import.meta.url.endsWith('.ts')) return Promise.resolve(new URL(entry.bundle, import.meta.url))
  let url = built.get(entry.name)
  if (!url) {
    url = (async () => {
      const root = fileURLToPath(new URL('..', import.meta.url))
      // under the project, so the bundle's bare imports resolve from its node_modules
      const outfile = join(root, '.mqfn', 'build', `${entry.name}-thread-${process.pid}.mjs`)
      await mkdir(dirname(outfile), { recursive: true })
      const { build } = await import('esbuild')
      await build({ entryPoints: [join(root, entry.source)], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'silent' })
      process.once('exit', () => void rm(outfile, { force: true }))
      return pathToFileURL(outfile)
    })()
    built.set(entry.name, url)
  }
  return url
}

import { mkdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

let built: Promise<URL> | undefined

/**
 * The module a handler thread starts from. In the bundle (dist/mqfn.js) it is
 * dist/handler-thread.js, built beside it. From source (tsx, the tests) it is
 * thread.ts bundled once per process with esbuild, like the handlers themselves: a
 * worker thread does not take tsx's hooks from its process, and transpiling the
 * runtime in every thread made each start take seconds.
 */
export function threadEntry(): Promise<URL> {
  if (!import.meta.url.endsWith('.ts')) return Promise.resolve(new URL('./handler-thread.js', import.meta.url))
  built ??= (async () => {
    const source = fileURLToPath(new URL('./thread.ts', import.meta.url))
    // under the project, so the bundle's bare imports resolve from its node_modules
    const outfile = join(dirname(source), '..', '..', '.mqfn', 'build', `thread-${process.pid}.mjs`)
    await mkdir(dirname(outfile), { recursive: true })
    const { build } = await import('esbuild')
    await build({ entryPoints: [source], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'silent' })
    process.once('exit', () => void rm(outfile, { force: true }))
    return pathToFileURL(outfile)
  })()
  return built
}

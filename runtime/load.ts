import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Message } from 'esbuild'
import { z } from 'zod'
import { EVENT_TYPES, TOPIC_EVENTS, type EventType } from '../common/event-types.ts'
import { errorMessage, mqfnError, type MqfnError } from '../common/errors.ts'
import type { MqfnEvent, WireEvent } from '../common/events.ts'
import { createTopicMatcher } from '../common/topic.ts'
import { HANDLER_EVENT, HANDLER_PAYLOAD, type HandlerContext, type PayloadSchema } from './api.ts'
import { HandlerConfigSchema, type ResolvedHandlerConfig } from './handler-config.ts'
import { scanFunctions, type HandlerFile } from './scan.ts'

/** A handler as the worker knows it: its module runs in its own thread (runtime/sandbox/), never here. */
export interface LoadedHandler {
  readonly name: string
  readonly event: EventType
  /** The source file, as logs and errors name it. */
  readonly path: string
  /** The compiled module its thread imports. */
  readonly module: string
  readonly config: ResolvedHandlerConfig
  /** Whether this handler wants the event (its topic filter, if any). */
  readonly wants: (event: WireEvent | MqfnEvent) => boolean
}

/** A handler module imported and checked: what its thread runs. */
export interface ImportedHandler {
  readonly config: ResolvedHandlerConfig
  readonly fn: (event: MqfnEvent, ctx: HandlerContext) => unknown
  /** A published handler's payload schema: the JSON payload must pass it, or the handler is not run. */
  readonly payload?: PayloadSchema
}

/** A handler file that did not load; `event` when its location names one (the worker holds that event type back). */
export type LoadFailure = { path: string; error: MqfnError; event?: EventType }

/** Imports one compiled handler (in its thread) and answers what the worker needs to know of it. */
export type HandlerLoader = (file: HandlerFile, module: string, display: string) => Promise<LoadedHandler | LoadFailure>

/** The worker's view of a handler whose module loaded with this config. */
export function loadedHandler(file: HandlerFile, module: string, display: string, config: ResolvedHandlerConfig): LoadedHandler {
  return { name: file.name, event: file.event, path: display, module, config, wants: wantsFor(config) }
}

export interface LoadResult {
  handlers: LoadedHandler[]
  errors: LoadFailure[]
  /** Removes the compiled files. */
  dispose(): Promise<void>
}

const TOPIC_EVENT_SET: ReadonlySet<string> = new Set(TOPIC_EVENTS)

/** runtime/api.ts, which `import ... from 'mqtt-functions'` in a handler file resolves to. */
export function apiEntry(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = join(dir, 'runtime', 'api.ts')
    if (existsSync(candidate)) return candidate
    const parent = dirname(dir)
    if (parent === dir) throw new Error('cannot find runtime/api.ts above ' + fileURLToPath(import.meta.url))
    dir = parent
  }
}

function formatEsbuild(messages: Message[]): string {
  return messages
    .map((m) => (m.location ? `${m.location.file}:${m.location.line}:${m.location.column + 1}: ${m.text}` : m.text))
    .join('; ')
}

function topicsOf(event: WireEvent | MqfnEvent): string[] {
  switch (event.type) {
    case 'published':
    case 'delivered':
      return [event.topic]
    case 'subscribed':
      return event.subscriptions.map((s) => s.topic)
    case 'unsubscribed':
      return event.topics
    default:
      return []
  }
}

function wantsFor(config: ResolvedHandlerConfig): (event: WireEvent | MqfnEvent) => boolean {
  if (config.topic === undefined) return () => true
  const matches = createTopicMatcher(typeof config.topic === 'string' ? [config.topic] : config.topic)
  // published and delivered, nearly every event: their one topic, without an array
  return (event) => (event.type === 'published' || event.type === 'delivered' ? matches(event.topic) : topicsOf(event).some(matches))
}

/**
 * Compiles each handler file on its own with esbuild (so one broken file cannot
 * break the others), imports it, and validates its exports. Nothing is compiled
 * after this: events run the loaded functions.
 */
export async function loadHandlers(functionsDir: string, loader: HandlerLoader): Promise<LoadResult> {
  const dir = resolve(functionsDir)
  if (existsSync(join(dir, PREBUILT_MANIFEST))) return loadPrebuilt(dir, loader)
  const scan = await scanFunctions(dir)
  // Compiled files sit under the project (not /tmp) so their bare imports resolve from its node_modules.
  const buildRoot = join(dirname(dir), '.mqfn', 'build')
  await mkdir(buildRoot, { recursive: true })
  const outDir = await mkdtemp(join(buildRoot, `${process.pid}-`))
  const api = apiEntry()
  const errors = [...scan.errors]
  const results = await Promise.all(scan.files.map((file) => loadOne(file, outDir, api, loader)))
  const handlers: LoadedHandler[] = []
  for (const r of results) {
    if ('error' in r) errors.push(r)
    else handlers.push(r)
  }
  return { handlers, errors, dispose: () => rm(outDir, { recursive: true, force: true }) }
}

function displayPath(path: string): string {
  return path.startsWith(process.cwd() + '/') ? path.slice(process.cwd().length + 1) : path
}

/** Bundles one handler file; `outfile` undefined only checks that it compiles. */
export async function compile(path: string, outfile: string | undefined, api: string): Promise<MqfnError | null> {
  try {
    // imported here, not at the top: a worker running prebuilt handlers (mqfn build) never needs esbuild
    const { build } = await import('esbuild')
    await build({
      entryPoints: [path],
      ...(outfile ? { outfile } : { write: false, outdir: '/' }),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      alias: { 'mqtt-functions': api },
      sourcemap: 'inline',
      logLevel: 'silent',
    })
    return null
  } catch (err) {
    const messages = (err as { errors?: Message[] }).errors
    return mqfnError('MQFN_ERR_HANDLER_COMPILE', displayPath(path), messages ? formatEsbuild(messages) : errorMessage(err))
  }
}

/** Compile errors of the handler files under `functionsDir`, without loading any (mqfn dev checks before a reload). */
export async function compileErrors(functionsDir: string): Promise<MqfnError[]> {
  const scan = await scanFunctions(resolve(functionsDir))
  const api = apiEntry()
  const results = await Promise.all(scan.files.map((f) => compile(f.path, undefined, api)))
  return results.filter((e): e is MqfnError => e !== null)
}

async function loadOne(file: HandlerFile, outDir: string, api: string, loader: HandlerLoader): Promise<LoadedHandler | LoadFailure> {
  const display = displayPath(file.path)
  const outfile = join(outDir, `${file.name.replace('/', '__')}.mjs`)
  const compileError = await compile(file.path, outfile, api)
  if (compileError) return { path: display, event: file.event, error: compileError }
  return loader(file, outfile, display)
}

/** Imports one compiled handler file and checks its exports (in the handler's thread, or in `mqfn build`). */
export async function importHandler(file: HandlerFile, outfile: string, display: string): Promise<ImportedHandler | LoadFailure> {
  let mod: Record<string, unknown>
  try {
    mod = (await import(pathToFileURL(outfile).href)) as Record<string, unknown>
  } catch (err) {
    return { path: display, error: mqfnError('MQFN_ERR_HANDLER_LOAD', display, errorMessage(err)) }
  }
  const fn = mod.default
  if (typeof fn !== 'function') {
    const what = fn === undefined ? 'has no default export' : `default export is ${typeof fn}, not a function`
    return { path: display, error: mqfnError('MQFN_ERR_HANDLER_EXPORT', display, `${what}; export default defineHandler('${file.event}', async (event, ctx) => { ... })`) }
  }
  const declared = (fn as { [HANDLER_EVENT]?: unknown })[HANDLER_EVENT]
  if (declared !== undefined && declared !== file.event) {
    return { path: display, error: mqfnError('MQFN_ERR_HANDLER_EXPORT', display, `handler is defined for "${String(declared)}" but its file is a "${file.event}" handler`) }
  }
  const payload = (fn as { [HANDLER_PAYLOAD]?: unknown })[HANDLER_PAYLOAD]
  if (payload !== undefined && typeof (payload as { safeParse?: unknown }).safeParse !== 'function') {
    return { path: display, error: mqfnError('MQFN_ERR_HANDLER_EXPORT', display, 'the payload option must be a zod schema (something with safeParse)') }
  }
  const parsed = HandlerConfigSchema.safeParse(mod.config ?? {})
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join('.') || 'config'}: ${i.message}`).join('; ')
    return { path: display, error: mqfnError('MQFN_ERR_HANDLER_CONFIG', display, detail) }
  }
  if (parsed.data.topic !== undefined && !TOPIC_EVENT_SET.has(file.event)) {
    return { path: display, error: mqfnError('MQFN_ERR_HANDLER_CONFIG', display, `topic: only ${TOPIC_EVENTS.join(', ')} handlers take a topic filter`) }
  }
  return {
    config: parsed.data,
    fn: fn as ImportedHandler['fn'],
    ...(payload !== undefined ? { payload: payload as PayloadSchema } : {}),
  }
}

/**
 * `mqfn build` writes this beside the compiled handlers; a functions directory that
 * holds it is loaded as it is, with nothing compiled (the container image's worker).
 */
export const PREBUILT_MANIFEST = 'mqfn-build.json'

const PrebuiltManifestSchema = z.object({
  v: z.literal(1),
  handlers: z.array(z.object({
    name: z.string().regex(/^[A-Za-z]+(\/[A-Za-z0-9_-]+)?$/, 'expected <event> or <event>/<name>'),
    event: z.enum(EVENT_TYPES),
    /** The compiled file, relative to the manifest. */
    file: z.string().regex(/^[^/\\]+\.mjs$/, 'expected a .mjs file name beside the manifest'),
    /** The handler's source file, as logs and stack traces name it. */
    source: z.string().min(1),
  }).strict()),
}).strict()

export type PrebuiltManifest = z.output<typeof PrebuiltManifestSchema>

async function loadPrebuilt(dir: string, loader: HandlerLoader): Promise<LoadResult> {
  const manifestPath = join(dir, PREBUILT_MANIFEST)
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(manifestPath, 'utf8'))
  } catch (err) {
    throw mqfnError('MQFN_ERR_PREBUILT_MANIFEST', displayPath(manifestPath), errorMessage(err))
  }
  const parsed = PrebuiltManifestSchema.safeParse(raw)
  if (!parsed.success) {
    throw mqfnError('MQFN_ERR_PREBUILT_MANIFEST', displayPath(manifestPath), parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; '))
  }
  const results = await Promise.all(parsed.data.handlers.map((h) => loader({ name: h.name, event: h.event, path: h.source }, join(dir, h.file), h.source)))
  const handlers: LoadedHandler[] = []
  const errors: LoadResult['errors'] = []
  for (const r of results) {
    if ('error' in r) errors.push(r)
    else handlers.push(r)
  }
  // the files belong to the build, not to this process: nothing to remove
  return { handlers, errors, dispose: async () => {} }
}

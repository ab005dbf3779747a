import { readdir } from 'node:fs/promises'
import { extname, join, relative } from 'node:path'
import { EVENT_TYPES, isEventType, type EventType } from '../common/event-types.ts'
import { mqfnError, type MqfnError } from '../common/errors.ts'

/** One handler file found under functions/. */
export interface HandlerFile {
  /** `published` for functions/published.ts, `published/alerts` for functions/published/alerts.ts */
  name: string
  event: EventType
  path: string
}

export interface ScanResult {
  files: HandlerFile[]
  errors: { path: string; error: MqfnError; event?: EventType }[]
}

const SOURCE = new Set(['.ts', '.mts', '.js', '.mjs'])
const VALID = EVENT_TYPES.join(', ')

// Helpers, tests and declaration files may live beside handlers.
function ignored(file: string): boolean {
  return file.startsWith('_') || file.startsWith('.') || /\.(d|test|spec)\.[mc]?[tj]s$/.test(file)
}

/**
 * `functions/<event>.ts` and `functions/<event>/<name>.ts` (or .js), sorted by name,
 * so every worker loads the same handlers in the same order.
 */
export async function scanFunctions(dir: string): Promise<ScanResult> {
  const found: HandlerFile[] = []
  const errors: ScanResult['errors'] = []
  const rel = (p: string) => relative(process.cwd(), p) || p
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    // no functions/ at all is a valid setup: the built-ins (event log, presence) still run
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { files: [], errors: [] }
    throw err
  }
  for (const entry of entries) {
    if (ignored(entry.name)) continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (!isEventType(entry.name)) {
        errors.push({ path: rel(path), error: mqfnError('MQFN_ERR_HANDLER_UNKNOWN_EVENT', rel(path), entry.name, VALID) })
        continue
      }
      for (const inner of await readdir(path, { withFileTypes: true })) {
        if (ignored(inner.name) || !SOURCE.has(extname(inner.name))) continue
        const innerPath = join(path, inner.name)
        if (!inner.isFile()) {
          errors.push({ path: rel(innerPath), event: entry.name, error: mqfnError('MQFN_ERR_HANDLER_BAD_NAME', rel(innerPath), 'handlers nest one level deep at most: functions/<event>/<name>.ts') })
          continue
        }
        const base = inner.name.slice(0, -extname(inner.name).length)
        if (!/^[A-Za-z0-9_-]+$/.test(base)) {
          errors.push({ path: rel(innerPath), event: entry.name, error: mqfnError('MQFN_ERR_HANDLER_BAD_NAME', rel(innerPath), `"${base}" is not a valid handler name: use letters, digits, "-" and "_"`) })
          continue
        }
        found.push({ name: `${entry.name}/${base}`, event: entry.name, path: innerPath })
      }
    } else if (entry.isFile() && SOURCE.has(extname(entry.name))) {
      const base = entry.name.slice(0, -extname(entry.name).length)
      if (!isEventType(base)) {
        errors.push({ path: rel(path), error: mqfnError('MQFN_ERR_HANDLER_UNKNOWN_EVENT', rel(path), base, VALID) })
        continue
      }
      found.push({ name: base, event: base, path })
    }
  }
  const byName = new Map<string, HandlerFile[]>()
  for (const f of found) byName.set(f.name, [...(byName.get(f.name) ?? []), f])
  const files: HandlerFile[] = []
  for (const [name, list] of byName) {
    if (list.length === 1) files.push(list[0] as HandlerFile)
    else {
      const paths = list.map((f) => rel(f.path)).sort()
      errors.push({ path: paths[0] as string, event: (list[0] as HandlerFile).event, error: mqfnError('MQFN_ERR_HANDLER_DUPLICATE', name, paths.join(' and ')) })
    }
  }
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  errors.sort((a, b) => (a.path < b.path ? -1 : 1))
  return { files, errors }
}

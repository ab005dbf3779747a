import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { errorMessage } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'

/** Parses a JSON (`.json`) or YAML file; errors name the file and the line. */
export function readStructuredFile(path: string): unknown {
  const text = readFileSync(path, 'utf8')
  if (path.endsWith('.json')) return JSON.parse(text)
  return parseYaml(text, { prettyErrors: true })
}

export interface WatchedFile<T> {
  current(): T
  close(): void
}

/**
 * A file read at start (a bad file fails start-up) and re-read when it changes.
 * Polling the file's stat, rather than fs.watch, also sees editors' rename-over
 * saves and Kubernetes' symlink swaps of mounted ConfigMaps and Secrets. A bad
 * new version is logged and the previous one stays in force.
 */
export function watchStructuredFile<T>(
  path: string,
  what: string,
  parse: (raw: unknown) => T,
  log: Logger,
  intervalMs = 1000,
): WatchedFile<T> {
  let value = parse(readStructuredFile(path))
  const onChange = (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return
    if (curr.nlink === 0) {
      log.error({ path }, `${what} disappeared; keeping the last version`)
      return
    }
    try {
      value = parse(readStructuredFile(path))
      log.info({ path }, `${what} reloaded`)
    } catch (err) {
      log.error({ path, err: errorMessage(err) }, `${what} is invalid; keeping the last version`)
    }
  }
  watchFile(path, { interval: intervalMs, persistent: false }, onChange)
  return {
    current: () => value,
    close: () => unwatchFile(path, onChange),
  }
}

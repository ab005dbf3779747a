import { threadEntry as entryOf } from '../../common/thread-entry.ts'

/** The runtime's worker-thread entries (common/thread-entry.ts). */
const ENTRIES = {
  handler: { name: 'handler', source: 'runtime/sandbox/thread.ts', bundle: './handler-thread.js' },
  typecheck: { name: 'typecheck', source: 'runtime/sandbox/typecheck-thread.ts', bundle: './typecheck-thread.js' },
} as const

/** The module a runtime thread starts from. */
export function threadEntry(name: keyof typeof ENTRIES): Promise<URL> {
  return entryOf(ENTRIES[name])
}

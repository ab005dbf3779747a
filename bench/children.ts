import type { ChildProcess } from 'node:child_process'

/* Every process the benchmark starts dies with it, even on a crash or Ctrl-C: one exit hook for all. */
const live = new Set<ChildProcess>()
let hooked = false

export function killOnExit(child: ChildProcess): void {
  live.add(child)
  child.once('exit', () => live.delete(child))
  if (hooked) return
  hooked = true
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL')
  })
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130))
}

import type { ChildProcess } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { threadEntry } from '../runtime/sandbox/entry.ts'

/**
 * A new worker must be up within this long, or the reload is given up. It bounds the
 * worker's whole start (connections, threads); a handler module's own import is bounded
 * at 10 s inside the worker (runtime/sandbox/handler-thread.ts), so a top-level await
 * that never settles is reported as that file failing to load, well before this.
 */
export const RELOAD_TIMEOUT_MS = 30_000

export type ReloadOutcome = { ok: true } | { ok: false; reason: string }

/**
 * Waits for a freshly started dev worker: ok once it says "worker ready" with every
 * handler file loaded. A file that failed to load (throws at import, never finishes),
 * an exit, or no answer within the bound: not ok, with the worker's own error lines
 * as the reason. The caller then stops it and keeps the previous worker serving.
 */
export function awaitReload(child: ChildProcess, timeoutMs = RELOAD_TIMEOUT_MS): Promise<ReloadOutcome> {
  return new Promise((resolve) => {
    const problems: string[] = []
    let partial = ''
    // a 'data' listener beside dev's own line reader: closing a second readline would pause the stream for both
    const onData = (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) onLine(line)
    }
    const done = (outcome: ReloadOutcome) => {
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.off('exit', onExit)
      resolve(outcome)
    }
    const timer = setTimeout(() => done({ ok: false, reason: `the new worker was not ready within ${timeoutMs / 1000} s` }), timeoutMs)
    const onExit = (code: number | null) => done({ ok: false, reason: `the new worker exited (code ${code})` })
    child.once('exit', onExit)
    const onLine = (line: string) => {
      let rec: { level?: number; msg?: string; failedFiles?: number }
      try {
        rec = JSON.parse(line) as typeof rec
      } catch {
        return
      }
      if ((rec.level ?? 0) >= 50 && rec.msg) problems.push(rec.msg)
      if (rec.msg !== 'worker ready') return
      done(rec.failedFiles ? { ok: false, reason: problems.join('; ') || `${rec.failedFiles} handler file(s) did not load` } : { ok: true })
    }
    child.stdout?.on('data', onData)
  })
}

let checking = false
let recheck = false

/** Type-checks functions/ in the background and prints each error as `file:line: message`. */
export function reportTypeErrors(functionsDir: string): void {
  // a check takes seconds: a save during one runs one more check when it ends, so the
  // last save is always checked
  if (checking) {
    recheck = true
    return
  }
  checking = true
  void threadEntry('typecheck')
    .then((entry) => new Promise<string[] | null>((resolve, reject) => {
      const thread = new Worker(entry, { workerData: { dir: functionsDir } })
      thread.once('message', resolve)
      thread.once('error', reject)
      thread.once('exit', () => resolve(null))
    }))
    .then((lines) => {
      for (const line of lines ?? []) console.error(`mqfn dev: type error: ${line}`)
    }, (err: unknown) => console.error(`mqfn dev: type check failed: ${(err as Error).message}`))
    .finally(() => {
      checking = false
      if (!recheck) return
      recheck = false
      reportTypeErrors(functionsDir)
    })
}

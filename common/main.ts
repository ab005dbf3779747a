import type { Logger } from './logger.ts'
import { errorMessage, isMqfnError } from './errors.ts'

export interface Closable {
  close(): Promise<void>
}

/**
 * Runs a process entry: start it, close it on SIGTERM/SIGINT (exit 0), and on a
 * start-up failure print one clear line and exit 1. A second signal exits at once.
 */
export async function runMain(name: string, start: () => Promise<{ app: Closable; log: Logger }>): Promise<void> {
  let started: { app: Closable; log: Logger }
  try {
    started = await start()
  } catch (err) {
    const detail = isMqfnError(err) ? `${err.code}: ${err.message}` : errorMessage(err)
    process.stderr.write(`mqfn ${name}: ${detail}\n`)
    if (!isMqfnError(err) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`)
    process.exit(1)
  }
  const { app, log } = started
  let closing = false
  const stop = (signal: string) => {
    if (closing) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    closing = true
    log.info({ signal }, 'shutting down')
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

import { runMain } from '../common/main.ts'
import { createLogger } from '../common/logger.ts'
import { loadWorkerConfig } from './config.ts'
import { createWorker } from './worker.ts'

/**
 * `mqfn worker [--config file.json] [--events a,b] [--concurrency N]`: configured by
 * environment, see runtime/config.ts; `overrides` (the flags) win over it.
 */
export function workerMain(configFile?: string, overrides?: Record<string, unknown>): Promise<void> {
  return runMain('worker', async () => {
    const config = loadWorkerConfig({ file: configFile, overrides })
    const log = createLogger('worker', config.logLevel)
    return { app: await createWorker(config, log), log }
  })
}

import { runMain } from '../common/main.ts'
import { createLogger } from '../common/logger.ts'
import { loadWorkerConfig } from './config.ts'
import { createWorker } from './worker.ts'

/** `mqfn worker [--config file.json]`: configured by environment, see runtime/config.ts. */
export function workerMain(configFile?: string): Promise<void> {
  return runMain('worker', async () => {
    const config = loadWorkerConfig({ file: configFile })
    const log = createLogger('worker', config.logLevel)
    return { app: await createWorker(config, log), log }
  })
}

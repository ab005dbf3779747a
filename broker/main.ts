import { runMain } from '../common/main.ts'
import { createLogger } from '../common/logger.ts'
import { loadBrokerConfig } from './config.ts'
import { createBroker } from './broker.ts'

/** `mqfn broker [--config file.json]`: configured by environment, see broker/config.ts. */
export function brokerMain(configFile?: string): Promise<void> {
  return runMain('broker', async () => {
    const config = loadBrokerConfig({ file: configFile })
    const log = createLogger('broker', config.logLevel)
    return { app: await createBroker(config, log), log }
  })
}

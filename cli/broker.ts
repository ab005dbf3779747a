import { brokerMain } from '../broker/main.ts'
import { HELP, parseCommand } from './args.ts'

export const BROKER_USAGE = `usage: mqfn broker [--config file.json]

runs the MQTT broker (aedes): MQTT on MQFN_MQTT_PORT (1883), MQTT over WebSocket on
MQFN_WS_PORT (8080); every lifecycle event goes to BullMQ queues in Redis (REDIS_URL).
Authentication is required unless MQFN_AUTH=none (docs/security.md).

  --config <file>   a JSON file with the settings in camelCase; the environment wins

Runs until SIGTERM or SIGINT, then closes its clients and exits 0.`

/** `mqfn broker`: `undefined` while it runs (the process stays up). */
export async function brokerCommand(args: readonly string[]): Promise<number | undefined> {
  const parsed = parseCommand('broker', BROKER_USAGE, { args: [...args], options: { ...HELP, config: { type: 'string' } } })
  if (!parsed) return 0
  await brokerMain(parsed.values.config)
  return undefined
}

import { prettyFactory } from 'pino-pretty'

/*
 * `mqfn dev` shows the broker's and worker's pino JSON lines through pino-pretty:
 * `12:00:01 INFO: [worker] worker ready` and the line's other fields below it. A line
 * that is not JSON (a stack printed by Node, say) passes through with its role.
 */
const pretty = prettyFactory({
  colorize: process.stdout.isTTY === true,
  translateTime: 'HH:MM:ss',
  ignore: 'pid,hostname,role',
  messageFormat: '[{role}] {msg}',
  singleLine: true,
})

export function prettyLine(line: string, role: string): string {
  if (!line.startsWith('{')) return `[${role}] ${line}`
  try {
    return pretty(JSON.parse(line) as Record<string, unknown>).trimEnd()
  } catch {
    return `[${role}] ${line}`
  }
}

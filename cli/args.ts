import { parseArgs, type ParseArgsConfig } from 'node:util'
import { MqfnError, mqfnError } from '../common/errors.ts'

/*
 * The one argument parser of the CLI: node:util parseArgs (strict), with `--help`/`-h`
 * on every command and one usage error. A usage error exits 2 with its message and a
 * pointer to the command's --help; it is thrown before anything connects or starts.
 */

/** A wrong command line (MQFN_ERR_USAGE): exit status 2. `command` is what it is about (`dlq list`). */
export class UsageError extends MqfnError {
  constructor(message: string, readonly command?: string) {
    super('MQFN_ERR_USAGE', mqfnError('MQFN_ERR_USAGE', message).message)
  }
}

export const HELP = { help: { type: 'boolean', short: 'h' } } as const

type Parsed<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>

/** parseArgs' own messages, in the CLI's words: `unknown option --x`, `--type needs a value`. */
function usageMessage(err: unknown): string {
  const code = (err as { code?: unknown }).code
  const message = err instanceof Error ? err.message : String(err)
  const option = /'(-{1,2}[^' ]+)/.exec(message)?.[1]
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) return `unknown option ${option}`
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
    return /does not take an argument/.test(message) ? `${option} takes no value` : `${option} needs a value`
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return message.replace(/^Unexpected argument '([^']*)'.*$/s, 'unexpected argument "$1"')
  return message
}

/**
 * Parses `args` for `mqfn <command>`; `undefined` when --help/-h was given (the usage
 * is printed). An option given twice is a usage error unless it is `multiple`.
 */
export function parseCommand<T extends ParseArgsConfig & { options: typeof HELP & NonNullable<ParseArgsConfig['options']> }>(
  command: string,
  usage: string,
  config: T,
): Parsed<T> | undefined {
  let parsed: Parsed<T> & { tokens?: { kind: string; name?: string; rawName?: string }[] }
  try {
    parsed = parseArgs({ ...config, strict: true, tokens: true }) as typeof parsed
  } catch (err) {
    // --help wins over whatever else is wrong on the line
    if (config.args?.some((a) => a === '--help' || a === '-h')) return printUsage(usage)
    throw new UsageError(usageMessage(err), command)
  }
  if ((parsed.values as { help?: boolean }).help) return printUsage(usage)
  const seen = new Set<string>()
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option' || !token.name) continue
    if (seen.has(token.name) && !config.options[token.name]?.multiple) throw new UsageError(`--${token.name} is given twice`, command)
    seen.add(token.name)
  }
  return parsed
}

function printUsage(usage: string): undefined {
  process.stdout.write(`${usage}\n`)
  return undefined
}

/** `2 h`-style strings: a positive integer flag value. */
export function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`${flag}: expected a positive integer, got ${JSON.stringify(value)}`)
  return Number(value)
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/

/** An ISO date, or a duration back from `now` (`30m`, `2h`, `7d`). */
export function parseTime(flag: string, value: string, now: Date): Date {
  const relative = /^(\d+)([smhdw])$/.exec(value)
  if (relative) return new Date(now.getTime() - Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS])
  const ms = ISO_DATE.test(value) ? Date.parse(value) : Number.NaN
  if (Number.isNaN(ms)) {
    throw new UsageError(`${flag}: expected an ISO date (2025-05-01, 2025-05-01T12:00:00Z) or a time ago (30s, 30m, 2h, 7d, 2w), got ${JSON.stringify(value)}`)
  }
  return new Date(ms)
}

/** Writes and waits until written: a one-shot command exits right after. */
export function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()))
}

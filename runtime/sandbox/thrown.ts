import { inspect } from 'node:util'
import { isMqfnError } from '../../common/errors.ts'

/** What is kept of anything a handler threw: always strings, whatever was thrown. */
export interface DescribedThrow {
  name: string
  message: string
  /** A coded error's code (ctx.publish's MQFN_ERR_PUBLISH, a timeout's, …). */
  code?: string
  stack?: string
}

/** Reads one property without trusting it: a getter may throw, the value may be anything. */
function safely<T>(read: () => T): T | undefined {
  try {
    return read()
  } catch {
    return undefined
  }
}

/** `inspect` calls no toString and copes with null prototypes; a hostile Proxy can still make it throw. */
function shown(value: unknown): string {
  return safely(() => inspect(value, { depth: 2, breakLength: Infinity, maxStringLength: 2000 })) ?? '(a value that cannot be shown)'
}

/**
 * A readable description of anything thrown: an Error, a string, a Symbol, `undefined`,
 * an object with no prototype or whose `toString` throws. It never throws itself: a
 * describing step that threw inside a catch block is what failed whole batches before.
 */
export function describeThrown(thrown: unknown): DescribedThrow {
  return safely(() => describe(thrown)) ?? { name: 'NonError', message: 'thrown value that cannot be read' }
}

function isErrorLike(value: unknown): boolean {
  // instanceof runs a Proxy's getPrototypeOf trap; an Error from another realm fails it
  return safely(() => value instanceof Error || (typeof value === 'object' && value !== null && Object.prototype.toString.call(value) === '[object Error]')) === true
}

function describe(thrown: unknown): DescribedThrow {
  if (isErrorLike(thrown)) {
    const e = thrown as Error
    const name = safely(() => e.name)
    const message = safely(() => e.message)
    const stack = safely(() => e.stack)
    const described: DescribedThrow = {
      name: typeof name === 'string' && name.length > 0 ? name : 'Error',
      message: typeof message === 'string' ? message : message === undefined ? '(no readable message)' : shown(message),
    }
    if (typeof stack === 'string') described.stack = stack
    const code = safely(() => (isMqfnError(e) ? e.code : undefined))
    if (code !== undefined) described.code = code
    return described
  }
  if (typeof thrown === 'string') return { name: 'NonError', message: thrown }
  if (typeof thrown === 'symbol') return { name: 'NonError', message: `thrown Symbol: ${safely(() => thrown.toString()) ?? 'Symbol()'}` }
  if (thrown === undefined || thrown === null) return { name: 'NonError', message: `thrown ${String(thrown)}` }
  return { name: 'NonError', message: `thrown ${typeof thrown}: ${shown(thrown)}` }
}

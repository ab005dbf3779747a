import type { EventType } from '../../common/event-types.ts'
import type { ErrorCode } from '../../common/errors.ts'
import type { WireEvent } from '../../common/events.ts'
import type { ResolvedHandlerConfig } from '../handler-config.ts'
import type { DescribedThrow } from './thrown.ts'

/*
 * What crosses between the worker and a handler's thread. Everything is structured-clone
 * safe: events travel as wire events (payload base64, as in the queue), errors as strings.
 */

/** What a thread needs to build ctx on its own: its own MongoDB and Redis connections. */
export interface ContextSettings {
  mongoUrl: string
  database: string
  redisUrl: string
  prefix: string
  logLevel: string
  /** The log lines' role: `worker`, `invoke`. */
  role: string
}

/** The thread's workerData: one handler, compiled. */
export interface ThreadSetup {
  name: string
  event: EventType
  /** The handler's source file, as logs name it. */
  path: string
  /** The compiled module the thread imports. */
  module: string
  ctx: ContextSettings
}

/** One attempt of the handler on one event. */
export interface RunItem {
  id: number
  attempt: number
  event: WireEvent
}

/**
 * `final`: retrying cannot help (the payload failed the handler's schema). `stopped`: the
 * worker ended the thread under the attempt (deadline, heap cap, crash), so the thread
 * could not log it.
 */
export type RunOutcome = { ok: true; ms: number } | { ok: false; ms: number; error: DescribedThrow; timeout?: true; final?: true; stopped?: true }

export type ToThread = { kind: 'run'; timeout: number; items: RunItem[] }

export type FromThread =
  /** The thread is up and starts importing the handler's module. */
  | { kind: 'importing' }
  | { kind: 'loaded'; config: ResolvedHandlerConfig }
  | { kind: 'load-failed'; code: ErrorCode; message: string }
  | { kind: 'done'; results: { id: number; outcome: RunOutcome }[] }
  /** A handler kept running past its timeout and the abort: the thread is retired. */
  | { kind: 'stuck'; id: number }

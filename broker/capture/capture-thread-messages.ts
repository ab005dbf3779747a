import type { CaptureSettings } from './output.ts'

/*
 * What the broker's thread and its capture thread (MQFN_CAPTURE_THREAD) say to each
 * other. Events cross as one JSON string per flush: a string is copied once into the
 * message, where an array of objects would be cloned field by field.
 */

/** The thread's workerData. */
export interface ThreadSetup extends CaptureSettings {
  /** This thread's capture store tag: a new one per thread, so a restarted thread never reuses flush numbers. */
  tag: string
  logLevel: string
}

export type ToThread =
  /** The events of one flush, as a JSON array; `wait`: someone waits for it to be stored (QoS 1/2). */
  | { kind: 'flush'; id: number; json: string; wait: boolean }
  | { kind: 'close'; flushTimeoutMs: number }

/** How often the thread says it is alive; the broker's thread ends one silent for HANG_MS (capture-thread-sink.ts). */
export const ALIVE_EVERY_MS = 1000

export type FromThread =
  | { kind: 'ready' }
  | { kind: 'alive' }
  /** Flush `id` is in the capture store (or could not be, with `error`): its acknowledgements may go. */
  | { kind: 'stored'; id: number; error?: string }
  /** The first `events` events this thread received are in BullMQ; `oldestTs` is the capture time of the oldest just written. */
  | { kind: 'written'; events: number; oldestTs: number }
  | { kind: 'closed'; flushed: boolean }

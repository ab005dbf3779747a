import type { EventType } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'

/*
 * Each event is turned into JSON once, at flush time; the same strings make the
 * capture store's entry (the ack path) and the BullMQ jobs' data (the pump), which
 * BullMQ stores as the string it is given (RedisQueueBackend.addJobToTransaction
 * takes a JobJson whose `data` is already JSON). Concatenation of strings costs a
 * rope node, not a copy.
 */

/** The events of one flush, encoded. */
export interface Encoded {
  events: readonly WireEvent[]
  pieces: readonly string[]
}

export function encode(events: readonly WireEvent[]): Encoded {
  const pieces = new Array<string>(events.length)
  for (let i = 0; i < events.length; i++) pieces[i] = JSON.stringify(events[i])
  return { events, pieces }
}

/** The capture store's entry for a flush: a JSON array of its events. */
export function storeEntry(e: Encoded): string {
  return `[${e.pieces.join(',')}]`
}

/** A BullMQ batch job's data ({@link BatchJobData}) as JSON, from encoded events. */
export function jobData(pieces: readonly string[]): string {
  return `{"v":1,"events":[${pieces.join(',')}]}`
}

export interface JobChunk {
  type: EventType
  pieces: string[]
}

/**
 * Splits encoded flushes into jobs: per event type in capture order, at most
 * `maxEvents` events and about `maxBytes` of JSON per job (one event over the
 * byte bound still goes, alone).
 */
export function chunkJobs(flushes: readonly Encoded[], maxEvents: number, maxBytes: number): JobChunk[] {
  const open = new Map<EventType, { chunk: JobChunk; bytes: number }>()
  const out: JobChunk[] = []
  for (const f of flushes) {
    for (let i = 0; i < f.events.length; i++) {
      const type = (f.events[i] as WireEvent).type
      const piece = f.pieces[i] as string
      let cur = open.get(type)
      if (cur && (cur.chunk.pieces.length >= maxEvents || cur.bytes + piece.length > maxBytes)) cur = undefined
      if (!cur) {
        cur = { chunk: { type, pieces: [] }, bytes: 0 }
        open.set(type, cur)
        out.push(cur.chunk)
      }
      cur.chunk.pieces.push(piece)
      cur.bytes += piece.length
    }
  }
  return out
}

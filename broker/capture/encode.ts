import type { EventType } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'

/*
 * Each event is turned into JSON once, at flush time; the same strings make the
 * capture store's entry (the acknowledgement path) and the BullMQ jobs' data (the
 * pump), which BullMQ stores as the string it is given
 * (RedisQueueBackend.addJobToTransaction takes a JobJson whose `data` is JSON).
 * One JSON.stringify per event type and flush, not per event: a call costs ~1 µs
 * besides its output (profile, docs/performance.md). Slices and concatenations of
 * strings are views and ropes in V8, flattened once when written to the socket.
 */

/** Events of one type, consecutive in one flush, as a JSON array. */
export interface Group {
  type: EventType
  count: number
  /** A JSON array of the events. */
  json: string
}

/** The events of one flush, encoded. */
export interface Encoded {
  groups: readonly Group[]
}

/** Bytes an event is expected to take in a job: what maxJobBytes bounds. */
function estimate(e: WireEvent): number {
  return e.type === 'published' ? e.payload.length + 200 : 200
}

/** Groups a flush's events by type in capture order, each group within the job bounds. */
export function encode(events: readonly WireEvent[], maxEvents: number, maxBytes: number): Encoded {
  const open = new Map<EventType, { items: WireEvent[]; bytes: number }>()
  const parts: { type: EventType; items: WireEvent[] }[] = []
  for (const e of events) {
    const size = estimate(e)
    let cur = open.get(e.type)
    if (cur && (cur.items.length >= maxEvents || cur.bytes + size > maxBytes)) cur = undefined
    if (!cur) {
      cur = { items: [], bytes: 0 }
      open.set(e.type, cur)
      parts.push({ type: e.type, items: cur.items })
    }
    cur.items.push(e)
    cur.bytes += size
  }
  return { groups: parts.map((p) => ({ type: p.type, count: p.items.length, json: JSON.stringify(p.items) })) }
}

/** The elements of a JSON array, without its brackets. */
const inner = (json: string) => json.slice(1, -1)

/** The capture store's entry for a flush: a JSON array of its events. */
export function storeEntry(e: Encoded): string {
  return `[${e.groups.map((g) => inner(g.json)).join(',')}]`
}

export interface JobChunk {
  type: EventType
  /** JSON arrays of events, in capture order. */
  parts: string[]
}

/** A BullMQ batch job's data ({@link BatchJobData}) as JSON. */
export function jobData(c: JobChunk): string {
  return c.parts.length === 1 ? `{"v":1,"events":${c.parts[0] as string}}` : `{"v":1,"events":[${c.parts.map(inner).join(',')}]}`
}

/**
 * Merges the groups of consecutive flushes into jobs: per event type in capture
 * order, at most `maxEvents` events and about `maxBytes` of JSON per job (a group
 * over the bound still goes, alone).
 */
export function chunkJobs(flushes: readonly Encoded[], maxEvents: number, maxBytes: number): JobChunk[] {
  const open = new Map<EventType, { chunk: JobChunk; count: number; bytes: number }>()
  const out: JobChunk[] = []
  for (const f of flushes) {
    for (const g of f.groups) {
      let cur = open.get(g.type)
      if (cur && (cur.count + g.count > maxEvents || cur.bytes + g.json.length > maxBytes)) cur = undefined
      if (!cur) {
        cur = { chunk: { type: g.type, parts: [] }, count: 0, bytes: 0 }
        open.set(g.type, cur)
        out.push(cur.chunk)
      }
      cur.chunk.parts.push(g.json)
      cur.count += g.count
      cur.bytes += g.json.length
    }
  }
  return out
}

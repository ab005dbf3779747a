import type { Client } from 'aedes'
import type { EventType } from '../../common/event-types.ts'
import type { WireEvent } from '../../common/events.ts'
import type { EventSink } from './sink.ts'
import { stateOf, type ClientState } from './client-state.ts'

/** Fields every client event carries, taken from the connection's state (seq is advanced). */
export interface ClientFields {
  id: string
  ts: number
  brokerId: string
  clientId: string
  epoch: number
  seq: number
  prev: number
  remoteAddress?: string
  username?: string
}

/** What each event module needs: ids, the broker id, and the batcher to hand events to. */
export class Capture {
  readonly brokerId: string
  /** The batcher on this thread, or the capture thread (MQFN_CAPTURE_THREAD). */
  readonly batcher: EventSink
  readonly nextId: () => string
  /** Whether `delivered` events are captured (MQFN_CAPTURE_DELIVERED; broker/capture/delivered-switch.ts). */
  delivered: { readonly on: boolean } = { on: true }
  /** Refused logins captured (connectionError, reason not-authorized), whichever mechanism refused them; counted by onConnectionError. */
  authFailures = 0

  constructor(brokerId: string, batcher: EventSink, nextId: () => string) {
    this.brokerId = brokerId
    this.batcher = batcher
    this.nextId = nextId
  }

  /** Builds the common fields of a `type` event; `seq` increases by one per event of this connection. */
  fields(client: Client, state: ClientState, type: EventType): ClientFields {
    const seq = ++state.seq
    const f: ClientFields = {
      id: this.nextId(),
      ts: Date.now(),
      brokerId: this.brokerId,
      clientId: client.id ?? '',
      epoch: state.epoch,
      seq,
      prev: state.last[type] ?? 0,
    }
    state.last[type] = seq
    if (state.remoteAddress !== undefined) f.remoteAddress = state.remoteAddress
    if (state.username !== undefined) f.username = state.username
    return f
  }

  /** Hands a non-publish event over; these never make anyone wait. */
  emit(event: WireEvent): void {
    this.batcher.capture(event, 200)
  }

  state(client: Client): ClientState | undefined {
    return stateOf(client)
  }
}

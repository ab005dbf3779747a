import type { EventType } from '../common/event-types.ts'
import type { MqfnEvent, WireEvent } from '../common/events.ts'
import type { LoadedHandler } from './load.ts'

/** Loaded handlers, looked up by event (in name order) and by name. */
export class Registry {
  private readonly byEvent = new Map<EventType, LoadedHandler[]>()
  private readonly byName = new Map<string, LoadedHandler>()

  constructor(handlers: readonly LoadedHandler[]) {
    for (const h of handlers) {
      this.byName.set(h.name, h)
      this.byEvent.set(h.event, [...(this.byEvent.get(h.event) ?? []), h])
    }
  }

  /** The handlers that want this event (right type, topic filter matches). */
  for(event: WireEvent | MqfnEvent): LoadedHandler[] {
    const list = this.byEvent.get(event.type)
    return list ? list.filter((h) => h.wants(event)) : []
  }

  get(name: string): LoadedHandler | undefined {
    return this.byName.get(name)
  }

  get size(): number {
    return this.byName.size
  }
}

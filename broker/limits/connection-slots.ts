import type { EventEmitter } from 'node:events'

type Conn = EventEmitter & { destroyed?: boolean }

/**
 * Sessions open at once (maxConnections). A slot is taken when a CONNECT passes our
 * checks and given back when its connection closes, whatever closes it; counting
 * connections rather than aedes' registered clients also counts CONNECTs still
 * authenticating, so a burst cannot overshoot the limit.
 */
export class ConnectionSlots {
  private open = 0

  constructor(readonly max: number) {}

  /**
   * Takes a slot for `conn`, or returns false when none is left. A takeover (the same
   * client id connecting again [MQTT-3.1.4-2]) is let in at the limit: it replaces a
   * connection that is about to close, and refusing it would lock the device out
   * until its half-open predecessor times out.
   */
  take(conn: Conn, takeover: boolean): boolean {
    // already closing: it will not hold a slot, and its 'close' may have passed
    if (conn.destroyed) return true
    if (this.open >= this.max && !takeover) return false
    this.open++
    conn.once('close', () => this.open--)
    return true
  }
}

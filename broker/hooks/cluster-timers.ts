import type { Aedes } from 'aedes'

/** aedes 2 methods its typings do not declare (aedes.js). */
type SessionTimers = Aedes & {
  clearDelayedWill(clientId: string): void
  clearSessionExpiry(clientId: string): void
  persistence: { delWill(client: { id: string; brokerId: string }): Promise<unknown> }
}

/**
 * aedes keeps a disconnected MQTT 5 session's timers in the process it was connected
 * to: the delayed will and the session expiry. When the client connects again to
 * another broker of the cluster, this one would still publish the will when its
 * delay ends, though a reconnect within the delay cancels it [MQTT-3.1.3-9], and
 * still wipe the session's stored subscriptions, which the new connection now uses.
 * Every broker announces a connection on `$SYS/<broker id>/new/clients` (through the
 * shared emitter); on another broker's announcement this one drops its timers for
 * that client id, and the will it had stored for it.
 */
export function clearTimersOnRemoteConnect(aedes: Aedes): void {
  const timers = aedes as SessionTimers
  aedes.subscribe('$SYS/+/new/clients', (packet, done) => {
    const from = packet.topic.split('/')[1]
    const clientId = packet.payload.toString()
    if (from !== aedes.id && !(clientId in (aedes as SessionTimers & { clients: object }).clients)) {
      timers.clearDelayedWill(clientId)
      timers.clearSessionExpiry(clientId)
      timers.persistence.delWill({ id: clientId, brokerId: aedes.id }).catch(() => {})
    }
    done()
  }, () => {})
}

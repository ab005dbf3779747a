import type { Aedes, Client } from 'aedes'
import { safely, type Pipeline } from './pipeline.ts'

/**
 * Session Present [MQTT-3.2.2-2]: aedes answers it from stored subscriptions alone
 * (lib/handlers/connect.js), so a stored session without any got 0. Our aedes patch
 * 005+session-present asks this hook when there are none.
 */
export function storedSessionHook(p: Pipeline): (client: Client) => boolean | Promise<boolean> {
  return (client) => p.sessions.has(client.id)
}

/**
 * Keeps the record: a session is stored from its CONNACK on, until discarded or
 * expired. And tells the offline-session bounds (broker/flow/sessions.ts) when a
 * session connects and when a persistent one goes offline.
 */
export function observeSessions(aedes: Aedes, p: Pipeline): void {
  aedes.on('client', safely(p.log, 'sessionOnline', (client: Client) => p.offlineSessions.connected(client)))
  aedes.on('clientDisconnect', safely(p.log, 'sessionOffline', (client: Client) => p.offlineSessions.disconnected(client)))
  aedes.on('connackSent', safely(p.log, 'storedSession', (connack: { returnCode?: number; reasonCode?: number }, client: Client) => {
    if ((connack.reasonCode ?? connack.returnCode) !== 0) return
    // aedes' `clean`: the session ends with the connection (3.1.1 clean session 1,
    // MQTT 5 session expiry 0) [MQTT-3.1.2-6], [MQTT-3.1.2-23]
    if (client.clean) p.sessions.remove(client.id)
    else p.sessions.add(client.id)
  }))
  aedes.on('sessionExpired', safely(p.log, 'storedSession', (client: Client) => p.sessions.remove(client.id)))
}

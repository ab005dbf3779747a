import type { Aedes, Client } from 'aedes'
import { noteReason, stateOf } from '../capture/client-state.ts'
import { onConnackSent } from '../capture/events/client-connected.ts'
import { onClientClosing } from '../capture/events/client-disconnecting.ts'
import { onClientDisconnect } from '../capture/events/client-disconnected.ts'
import { onClientError } from '../capture/events/client-error.ts'
import { onAcknowledged, onPublishSent } from '../capture/events/delivered.ts'
import { onKeepaliveTimeout } from '../capture/events/keepalive-timeout.ts'
import { onSubscribe } from '../capture/events/subscribed.ts'
import { onUnsubscribe } from '../capture/events/unsubscribed.ts'
import type { ConnectionErrorStep } from './connection-error.ts'
import { safely, type Pipeline } from './pipeline.ts'

/**
 * aedes' events, which only observe: limits settle their counts first, then capture
 * turns each into our event (broker/capture/events/, one module per event). Must run
 * before `aedes.listen()`, so the takeover listener on `$SYS/+/new/clients` runs
 * before aedes' own, which closes the old connection.
 */
export function observeEvents(aedes: Aedes, p: Pipeline, connectionError: ConnectionErrorStep): void {
  const { capture: cap, log } = p
  const on = <A extends unknown[]>(event: string, name: string, fn: (...args: A) => void): void => {
    aedes.on(event as 'closed', safely(log, name, fn) as () => void)
  }
  // Client#close begins: every way a connection ends passes here, before aedes
  // tears the session down (our aedes patch 004+hook-events)
  on('clientClosing', 'clientDisconnecting', (client: Client) => {
    const state = stateOf(client)
    if (state && p.shuttingDown()) noteReason(state, 'shutdown')
    onClientClosing(cap, client)
  })
  // [MQTT-3.1.4-2]: the same client id again closes the existing connection
  on('clientTakeover', 'clientDisconnecting', (old: Client) => {
    const state = stateOf(old)
    if (state) noteReason(state, 'takeover')
  })
  // ... also when the new connection is on another broker of the cluster
  aedes.mq.on('$SYS/+/new/clients', (packet, done) => {
    const from = packet.topic.split('/')[1]
    const existing = aedes.clients[packet.payload.toString()]
    const state = existing && from !== aedes.id ? stateOf(existing) : undefined
    if (state) noteReason(state, 'takeover')
    done()
  })

  on('connackSent', 'clientConnected', (connack: { returnCode?: number; reasonCode?: number }, client: Client) => {
    // a v5 CONNACK carries reasonCode, a 3.1/3.1.1 one returnCode (aedes lib/handlers/connect.js)
    if ((connack.reasonCode ?? connack.returnCode) === 0) onConnackSent(cap, client)
  })
  on('clientDisconnect', 'clientDisconnected', (client: Client) => onClientDisconnect(cap, client))
  // aedes raises clientError for a client still connecting too: that is a connection error, through the same gate
  on('clientError', 'clientError', (client: Client, err: Error) => (cap.state(client)?.connected === false ? connectionError(client, err) : onClientError(cap, client, err)))
  on('connectionError', 'connectionError', (client: Client, err: Error) => {
    p.limits.refused(client, err)
    connectionError(client, err)
  })
  on('keepaliveTimeout', 'keepaliveTimeout', (client: Client) => onKeepaliveTimeout(cap, client))
  on('subscribe', 'subscribed', (subs: { topic: string; qos: number }[], client: Client) => {
    p.limits.subscribed(client, subs.map((s) => s.topic))
    onSubscribe(cap, subs as Parameters<typeof onSubscribe>[1], client)
  })
  on('unsubscribe', 'unsubscribed', (topics: string[], client: Client) => onUnsubscribe(cap, topics, client))
  // a QoS 1/2 PUBLISH written to a subscriber, with the topic it names (patch 010)
  on('publishSent', 'delivered', (packet: { topic: string; qos: number; messageId?: number }, client: Client) => onPublishSent(cap, client, packet))
  // PUBACK / PUBCOMP from a subscriber; the acknowledgement itself is the third argument (patch 004)
  on('ack', 'delivered', (_stored: unknown, client: Client, ack: { cmd: string; messageId?: number }) => onAcknowledged(cap, client, ack))
}

import type { Client } from 'aedes'
import type { DisconnectReason, EventType } from '../../common/event-types.ts'
import { remoteAddressOf } from '../security/peer.ts'

export type UserProperties = Record<string, string | string[]>

/** What the broker remembers about one connection for its events. */
export interface ClientState {
  /** Session epoch of this connection: larger for every newer connection. */
  readonly epoch: number
  /** Seq of the last event captured for this connection. */
  seq: number
  /** Seq of the last event of each type: the next one's `prev` (ordered handlers spot gaps with it). */
  readonly last: Partial<Record<EventType, number>>
  /** The first reason learnt for the connection ending; later ones do not overwrite it. */
  reason?: DisconnectReason
  error?: { message: string; code?: string }
  /** The session was established (clientConnected captured). */
  connected: boolean
  /** clientDisconnecting already captured. */
  disconnecting: boolean
  /** connectionError already captured (refused before a session existed). */
  refused: boolean
  username?: string
  keepalive?: number
  /** The CONNECT's protocol level (3, 4, 5), known before aedes accepts the client. */
  protocolVersion?: number
  /** User properties of an MQTT 5 CONNECT. */
  connectUserProperties?: UserProperties
  /** Reason code of the MQTT 5 DISCONNECT that ended the connection, and who sent it. */
  disconnect?: { reasonCode: number; reasonCodeFrom: 'client' | 'broker' }
  readonly remoteAddress?: string
  /** QoS 1/2 messages written to this client and not yet acknowledged, by message id. */
  readonly outgoing: Map<number, { topic: string; qos: 1 | 2 }>
}

const kState = Symbol('mqfn.clientState')
type WithState = Client & { [kState]?: ClientState }

export function attachState(client: Client, epoch: number): ClientState {
  const state: ClientState = {
    epoch,
    seq: 0,
    last: {},
    connected: false,
    disconnecting: false,
    refused: false,
    outgoing: new Map(),
    remoteAddress: remoteAddressOf(client.conn, client.req),
  }
  ;(client as WithState)[kState] = state
  return state
}

export function stateOf(client: Client): ClientState | undefined {
  return (client as WithState)[kState]
}

/** Records why the connection is ending unless a reason is already known. */
export function noteReason(state: ClientState, reason: DisconnectReason, error?: Error): void {
  if (state.reason !== undefined) return
  state.reason = reason
  if (error) state.error = errorInfo(error)
}

export function errorInfo(error: Error): { message: string; code?: string } {
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' ? { message: error.message, code } : { message: error.message }
}

/** Socket-level failures, as opposed to the peer breaking the protocol. */
const SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH'])

/** aedes' own limits: qlobber's 100 topic levels, QoS 2 in flight, packets queued before CONNACK. */
const AEDES_LIMIT_MESSAGES = /^(topic has too many levels|maxInflightInbound exceeded|Client queue limit reached)/

export function classifyError(error: Error): DisconnectReason {
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && SOCKET_CODES.has(code)) return 'socket-error'
  if (code === 'MQFN_ERR_LIMIT_EXCEEDED' || AEDES_LIMIT_MESSAGES.test(error.message)) return 'limit-exceeded'
  if (error.message === 'keep alive timeout') return 'keepalive-timeout'
  if (error.message === 'drain timeout') return 'socket-error'
  if (error.message === 'connect did not arrive in time') return 'connect-timeout'
  return 'protocol-error'
}

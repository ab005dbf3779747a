import type { Writable } from 'node:stream'
import type { Client } from 'aedes'
import { mqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { BrokerConfig } from '../config.ts'
import type { Capture } from '../capture/capture.ts'
import { noteReason } from '../capture/client-state.ts'
import { DropReport } from './drop-report.ts'
import { OutboundQueue, type DropReason } from './outbound-queue.ts'

export type FlowSettings = Pick<BrokerConfig, 'maxInflightPerClient' | 'maxQueuedMessagesPerClient' | 'maxQueuedBytesPerClient' | 'queueOverflow'>

/** MQTT 5 DISCONNECT reason code 0x97, Quota exceeded [MQTT-3.14.2.1]. */
const QUOTA_EXCEEDED = 0x97

const SETTING: Record<DropReason, string> = {
  'queue-full-qos0': 'maxQueuedMessagesPerClient/maxQueuedBytesPerClient',
  'queue-full-oldest': 'maxQueuedMessagesPerClient/maxQueuedBytesPerClient',
  'queue-full-disconnect': 'maxQueuedMessagesPerClient/maxQueuedBytesPerClient',
}

export interface Flow {
  /** Options for `new Aedes()`: each client gets its own bounded outbound queue. */
  readonly aedesOptions: { outboundQueue(client: Client): OutboundQueue }
  readonly report: DropReport
  close(): void
}

type DisconnectingClient = Client & { version?: number | null; disconnect(opts: { reasonCode: number }): void }

/**
 * Per-client delivery bounds: no client's socket ever holds up another's deliveries
 * (patch aedes+2.0.0-beta.1+003+flow-outbound-queue), and what waits for a slow
 * client is bounded, counted and reported (docs/security.md "Limits").
 */
export function createFlow(settings: Readonly<FlowSettings>, cap: Capture, log: Logger): Flow {
  const bounds = {
    maxInflight: settings.maxInflightPerClient,
    maxQueuedMessages: settings.maxQueuedMessagesPerClient,
    maxQueuedBytes: settings.maxQueuedBytesPerClient,
    overflow: settings.queueOverflow,
  }
  const report = new DropReport((client, reason, count) => {
    const state = cap.state(client)
    if (!state?.connected) return
    log.warn({ clientId: client.id, reason, count }, 'messages for a slow client dropped')
    const error = mqfnError('MQFN_ERR_LIMIT_EXCEEDED', SETTING[reason], `${count} messages for this client dropped (${reason})`)
    cap.emit({ ...cap.fields(client, state, 'clientError'), type: 'clientError', error: { message: error.message, code: error.code }, reason: 'limit-exceeded', count })
  })

  function overflow(client: DisconnectingClient): void {
    const error = mqfnError('MQFN_ERR_LIMIT_EXCEEDED', 'maxQueuedMessagesPerClient/maxQueuedBytesPerClient', 'the client does not read its messages fast enough (MQFN_QUEUE_OVERFLOW=disconnect)')
    const state = cap.state(client)
    if (state) noteReason(state, 'limit-exceeded', error)
    log.warn({ clientId: client.id }, 'slow client disconnected: its outbound queue is full')
    // A DISCONNECT can only reach a client whose socket still takes bytes; a full one
    // would hold the close until aedes' drainTimeout, so that connection is just ended.
    if (client.version === 5 && !(client.conn as unknown as Writable).writableNeedDrain) {
      client.disconnect({ reasonCode: QUOTA_EXCEEDED })
    } else {
      client.emit('error', error)
    }
  }

  return {
    aedesOptions: {
      outboundQueue: (client) =>
        new OutboundQueue(client, bounds, {
          dropped: (reason, count) => report.dropped(client, reason, count),
          overflow: () => setImmediate(overflow, client as DisconnectingClient),
        }),
    },
    report,
    close: () => report.close(),
  }
}

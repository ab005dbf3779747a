import type { Client } from 'aedes'
import { mqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { BrokerConfig } from '../config.ts'
import type { Capture } from '../capture/capture.ts'
import { noteReason } from '../capture/client-state.ts'
import { DropReport } from './drop-report.ts'
import { OutboundQueue, type DropReason } from './outbound-queue.ts'
import { endConnection } from '../hooks/end-connection.ts'
import { REASON } from '../mqtt5/reason-codes.ts'

export type FlowSettings = Pick<BrokerConfig, 'maxInflightPerClient' | 'maxQueuedMessagesPerClient' | 'maxQueuedBytesPerClient' | 'queueOverflow'>

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

  function overflow(client: Client): void {
    const error = mqfnError('MQFN_ERR_LIMIT_EXCEEDED', 'maxQueuedMessagesPerClient/maxQueuedBytesPerClient', 'the client does not read its messages fast enough (MQFN_QUEUE_OVERFLOW=disconnect)')
    const state = cap.state(client)
    if (state) noteReason(state, 'limit-exceeded', error)
    log.warn({ clientId: client.id }, 'slow client disconnected: its outbound queue is full')
    // MQTT 5: DISCONNECT 0x97 Quota exceeded, when its socket still takes bytes
    endConnection(client, error, REASON.QUOTA_EXCEEDED)
  }

  return {
    aedesOptions: {
      outboundQueue: (client) =>
        new OutboundQueue(client, bounds, {
          dropped: (reason, count) => report.dropped(client, reason, count),
          overflow: () => setImmediate(overflow, client),
        }),
    },
    report,
    close: () => report.close(),
  }
}

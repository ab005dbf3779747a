import type { Client } from 'aedes'
import type { DisconnectReason } from '../../../common/event-types.ts'
import type { Capture } from '../capture.ts'
import { classifyError, errorInfo, noteReason } from '../client-state.ts'

// CONNACK return codes [MQTT-3.2.2.3]
function reasonFor(error: Error, rc: number | undefined): DisconnectReason {
  // a limit says more than its return code (maxConnections is CONNACK 3)
  const classified = classifyError(error)
  if (classified === 'limit-exceeded') return classified
  if (rc === 4 || rc === 5) return 'not-authorized'
  if (rc !== undefined && rc > 0) return 'protocol-error'
  return classified
}

/** The reason a connectionError event of `error` would carry. */
export function connectionErrorReason(error: Error & { errorCode?: number; returnCode?: number }): DisconnectReason {
  return reasonFor(error, error.errorCode ?? error.returnCode)
}

/**
 * The MQTT 5 CONNACK reason code for a 3.1.1 return code, as aedes maps it
 * (lib/handlers/connect.js); 6 is aedes' own "keep alive limit exceeded".
 */
const V5_CONNACK = [0x00, 0x84, 0x85, 0x88, 0x86, 0x87, 0x9f]

/** aedes `connectionError`, or a refusal seen by our authenticate hook: no session exists. */
export function onConnectionError(cap: Capture, client: Client, error: Error & { errorCode?: number; returnCode?: number; reasonCode?: number }): void {
  const state = cap.state(client)
  if (!state || state.refused) return
  state.refused = true
  const rc = error.errorCode ?? error.returnCode
  const reason = reasonFor(error, rc)
  if (reason === 'not-authorized') cap.authFailures++
  noteReason(state, reason, error)
  cap.emit({
    ...cap.fields(client, state, 'connectionError'),
    clientId: client.id ?? null,
    type: 'connectionError',
    reason,
    error: errorInfo(error),
    ...(rc === undefined ? {} : state.protocolVersion === 5 ? { reasonCode: error.reasonCode ?? V5_CONNACK[rc] ?? 0x80 } : { returnCode: rc }),
  })
}

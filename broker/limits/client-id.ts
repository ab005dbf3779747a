import type { Client } from 'aedes'
import { mqfnError, type MqfnError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'

export interface ClientIdSettings {
  clientIdMaxLength: number
  /** When set, ids must also match it (MQFN_CLIENT_ID_PATTERN); unset by default. */
  clientIdPattern?: string | undefined
}

export type IdentifierRejected = MqfnError & { returnCode: 2 }

function rejected(detail: string): IdentifierRejected {
  return Object.assign(mqfnError('MQFN_ERR_CLIENT_ID', detail), { returnCode: 2 as const })
}

/** Ids are echoed into the error, and so into events and logs: never a whole long one, no raw control character. */
function shown(id: string): string {
  const quoted = JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}…` : id)
  return quoted.replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/*
 * [MQTT-3.1.3-5] obliges a server to accept 1–23 of [0-9a-zA-Z] and allows any other
 * UTF-8 string; aedes and Mosquitto take them, and devices use ids such as
 * "clean retained". Ill-formed UTF-8 and U+0000 close the connection before this
 * runs [MQTT-1.5.3-1/2] (parser-guard.ts). Control characters are the one thing
 * refused by default: UTF-8 strings SHOULD NOT hold them [MQTT-1.5.3], Mosquitto
 * refuses them too, and an id ends up in log lines, events and the dashboard.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/**
 * The client id rules (clientIdMaxLength, control characters, clientIdPattern when
 * set). A refusal is CONNACK 2, identifier rejected [MQTT-3.1.3-9] (MQTT 5: 0x85), and
 * is logged at info with its reason: a device refused for its id is otherwise only
 * visible in the event log.
 */
export function clientIdRules(settings: ClientIdSettings, log: Logger): (id: string, generated: boolean) => IdentifierRejected | null {
  const pattern = settings.clientIdPattern ? new RegExp(settings.clientIdPattern) : undefined
  const judge = (id: string, generated: boolean): IdentifierRejected | null => {
    // aedes made this id up for an empty one: it refuses an empty id without a clean
    // session itself for 3.1.1 [MQTT-3.1.3-8], and MQTT 5 allows one [MQTT-3.1.3-6]
    if (generated) return null
    if (id.length > settings.clientIdMaxLength) {
      return rejected(`the client id is ${id.length} characters; the limit is ${settings.clientIdMaxLength} (MQFN_CLIENT_ID_MAX_LENGTH)`)
    }
    const control = CONTROL.exec(id)
    if (control) {
      const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')
      return rejected(`client id ${shown(id)} contains the control character U+${code} at position ${control.index} [MQTT-1.5.3]`)
    }
    if (pattern && !pattern.test(id)) {
      return rejected(`client id ${shown(id)} does not match ${settings.clientIdPattern} (MQFN_CLIENT_ID_PATTERN)`)
    }
    return null
  }
  return (id, generated) => {
    const refusal = judge(id, generated)
    if (refusal) log.info({ clientId: shown(id), reason: refusal.message }, 'client id refused')
    return refusal
  }
}

/**
 * aedes refuses some ids itself before our rules run (an MQTT 3.1 id over its length,
 * an empty id without a clean session): an aedes `connectionError` listener that logs
 * those at info like ours.
 */
export function logIdRefusedByAedes(log: Logger): (client: Client, err: Error & { errorCode?: number; code?: string }) => void {
  return (client, err) => {
    if (err.errorCode !== 2 || err.code === 'MQFN_ERR_CLIENT_ID') return
    log.info({ clientId: shown(client.id ?? ''), reason: err.message }, 'client id refused')
  }
}

import { mqfnError, type MqfnError } from '../../common/errors.ts'

export interface ClientIdSettings {
  clientIdMaxLength: number
  clientIdPattern: string
}

export type IdentifierRejected = MqfnError & { returnCode: 2 }

function rejected(detail: string): IdentifierRejected {
  return Object.assign(mqfnError('MQFN_ERR_CLIENT_ID', detail), { returnCode: 2 as const })
}

/** Ids are echoed into the error, and so into events and logs: never a whole long one. */
function shown(id: string): string {
  return JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}…` : id)
}

/**
 * The client id rules (clientIdMaxLength, clientIdPattern). A refusal is CONNACK 2,
 * identifier rejected [MQTT-3.1.3-9].
 */
export function clientIdRules(settings: ClientIdSettings): (id: string, generated: boolean, clean: boolean) => IdentifierRejected | null {
  const pattern = new RegExp(settings.clientIdPattern)
  return (id, generated, clean) => {
    if (generated) {
      // [MQTT-3.1.3-8]: an empty id is only for a clean session; the one aedes made up is not checked
      return clean ? null : rejected('an empty client id needs a clean session [MQTT-3.1.3-8]')
    }
    if (id.length > settings.clientIdMaxLength) {
      return rejected(`the client id is ${id.length} characters; the limit is ${settings.clientIdMaxLength} (MQFN_CLIENT_ID_MAX_LENGTH)`)
    }
    if (!pattern.test(id)) {
      return rejected(`client id ${shown(id)} does not match ${settings.clientIdPattern} (MQFN_CLIENT_ID_PATTERN)`)
    }
    return null
  }
}

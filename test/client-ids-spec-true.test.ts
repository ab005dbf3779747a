import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connack, connected } from './helpers/auth.ts'
import { mqfn, processStack, ready } from './helpers/processes.ts'
import { waitFor } from './helpers/stack.ts'

/*
 * [MQTT-3.1.3-5]: a server must accept 1–23 of [0-9a-zA-Z] and MAY accept any other
 * UTF-8 id; like aedes and Mosquitto this broker does, within clientIdMaxLength. Control
 * characters are refused (UTF-8 strings SHOULD NOT hold them [MQTT-1.5.3]) with CONNACK 2
 * [MQTT-3.1.3-9] (MQTT 5: 0x85). Every refusal is logged at info with its reason.
 */

const ACCEPTED = ['clean retained', 'a/b', '+', '#', '%c', 'ünï-cødé 🙂', 'abcdefghijklmnopqrstuvw', 'x'.repeat(128)]

test('the default accepts any UTF-8 id within the length limit, on MQTT 3.1.1 and 5; control characters get CONNACK 2 / 0x85 and an info log line', async (t) => {
  const stack = await processStack(t, {})
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_LOG_LEVEL: 'info' }))
  await ready(broker, 'broker ready')
  const port = stack.mqttPort
  for (const protocolVersion of [4, 5] as const) {
    for (const clientId of ACCEPTED) assert.equal(await connack(port, { clientId, protocolVersion }), 0, `${JSON.stringify(clientId)} v${protocolVersion}`)
  }

  // the interoperability suite's id, used for a real round trip
  const suite = await connected(t, port, { clientId: 'clean retained' })
  await suite.subscribeAsync('ids/echo', { qos: 1 })
  const echoed = new Promise<string>((resolve) => suite.once('message', (_topic, payload) => resolve(payload.toString())))
  await suite.publishAsync('ids/echo', 'hello', { qos: 1 })
  assert.equal(await echoed, 'hello')

  assert.equal(await connack(port, { clientId: 'bell\u0007', protocolVersion: 4 }), 2)
  assert.equal(await connack(port, { clientId: 'del\u007f', protocolVersion: 5 }), 0x85)
  assert.equal(await connack(port, { clientId: 'y'.repeat(129) }), 2)
  await waitFor('three refusals logged', () => (broker.output().match(/"msg":"client id refused"/g) ?? []).length >= 3, 10_000, 100)
  const lines = broker.output().split('\n').filter((l) => l.includes('"msg":"client id refused"')).map((l) => JSON.parse(l) as { level: number | string; clientId: string; reason: string })
  assert.deepEqual(lines.map((l) => l.reason), [
    String.raw`client id refused: client id "bell\u0007" contains the control character U+0007 at position 4 [MQTT-1.5.3]`,
    String.raw`client id refused: client id "del\u007f" contains the control character U+007F at position 3 [MQTT-1.5.3]`,
    'client id refused: the client id is 129 characters; the limit is 128 (MQFN_CLIENT_ID_MAX_LENGTH)',
  ])
  for (const l of lines) assert.ok(l.level === 30 || l.level === 'info', `logged at info: ${JSON.stringify(l)}`)
})

test('MQFN_CLIENT_ID_PATTERN still narrows the ids for those who set it', async (t) => {
  const stack = await processStack(t, {})
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_LOG_LEVEL: 'info', MQFN_CLIENT_ID_PATTERN: '^[a-z0-9-]+$' }))
  await ready(broker, 'broker ready')
  assert.equal(await connack(stack.mqttPort, { clientId: 'sensor-1' }), 0)
  assert.equal(await connack(stack.mqttPort, { clientId: 'clean retained' }), 2)
  await waitFor('the refusal logged', () => broker.output().includes('client id refused: client id \\"clean retained\\" does not match ^[a-z0-9-]+$ (MQFN_CLIENT_ID_PATTERN)'), 10_000, 100)
})

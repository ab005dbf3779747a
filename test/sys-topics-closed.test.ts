import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connected, securityFiles, suback } from './helpers/auth.ts'
import { startStack, waitFor } from './helpers/stack.ts'

/*
 * `$SYS/` lists every client id and subscription. With authentication on it is
 * closed: only a user an ACL rule names (`username:`) may subscribe there; a rule
 * for everyone (`topic: "$SYS/#"` without a username) does not open it (issue 14
 * item 8). Refusal is 0x80 in 3.1.1 [MQTT-3.9.3-2], 0x87 in 5.0.
 */

test('auth on, no ACL file: $SYS/ subscriptions are refused, every other filter granted', async (t) => {
  const files = await securityFiles(t, ['dev'], undefined)
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { auth: 'required', ...files } })
  const v4 = await connected(t, stack.mqttPort, { clientId: 'dev-4', username: 'dev', password: 'pw-1234' })
  assert.deepEqual(await suback(v4, { '$SYS/#': { qos: 0 }, '$SYS': { qos: 0 }, '$share/g/$SYS/#': { qos: 0 }, '#': { qos: 0 }, 'a/+': { qos: 1 } }), [128, 128, 128, 0, 1])
  const v5 = await connected(t, stack.mqttPort, { clientId: 'dev-5', username: 'dev', password: 'pw-1234', protocolVersion: 5 })
  assert.deepEqual(await suback(v5, { '$SYS/+/new/clients': { qos: 0 }, 'b/#': { qos: 0 } }), [0x87, 0])
})

test('with an ACL: only the user a rule names reads $SYS/; a rule for everyone does not open it', async (t) => {
  const files = await securityFiles(t, ['ops', 'dev'], [
    '  - allow: subscribe',
    '    topic: $SYS/#',
    '    username: ops',
    '  - allow: subscribe',
    '    topic: $SYS/#',
    '  - allow: all',
    '    topic: "#"',
  ])
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { auth: 'required', ...files } })
  const ops = await connected(t, stack.mqttPort, { clientId: 'ops-1', username: 'ops', password: 'pw-1234' })
  const dev = await connected(t, stack.mqttPort, { clientId: 'dev-1', username: 'dev', password: 'pw-1234' })
  assert.deepEqual(await suback(ops, { '$SYS/#': { qos: 0 } }), [0])
  assert.deepEqual(await suback(dev, { '$SYS/#': { qos: 0 }, '$SYS/+/new/clients': { qos: 0 }, '#': { qos: 0 } }), [128, 128, 0])

  const opsSaw: string[] = []
  const devSaw: string[] = []
  ops.on('message', (topic, payload) => opsSaw.push(`${topic} ${payload.toString()}`))
  dev.on('message', (topic) => devSaw.push(topic))
  // aedes announces every new client on $SYS/<broker id>/new/clients
  await connected(t, stack.mqttPort, { clientId: 'newcomer', username: 'dev', password: 'pw-1234' })
  await waitFor('ops sees the new client', () => opsSaw.some((m) => m.endsWith('/new/clients newcomer')))
  assert.equal(devSaw.filter((topic) => topic.startsWith('$SYS')).length, 0)
})

test('auth none (development): $SYS/ stays open', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const client = await connected(t, stack.mqttPort, { clientId: 'anyone' })
  assert.deepEqual(await suback(client, { '$SYS/#': { qos: 0 } }), [0])
})

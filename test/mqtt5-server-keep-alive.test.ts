import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sessionV5 } from './helpers/mqtt5.ts'
import { connectPacket as connectPacket311, rawClient } from './helpers/raw-mqtt.ts'
import { sleep, startStack, waitFor, type Stack } from './helpers/stack.ts'

/*
 * Server Keep Alive (maxKeepAliveSeconds): an MQTT 5 client that asks for no
 * keepalive or a longer one is told the server's in its CONNACK and held to it
 * [MQTT-3.2.2-21/22]; a missed keepalive ends an MQTT 5 connection with DISCONNECT
 * 0x8D (Keep Alive timeout). MQTT 3.1.1 has no way to say it, so its clients keep
 * theirs (aedes refused them with the reserved return code 6; patch 006).
 */

type Doc = { type: string; clientId: string; seq: number; keepalive?: number; reason?: string; reasonCode?: number; reasonCodeFrom?: string }

const eventsOf = (stack: Stack, clientId: string, types: string[]) =>
  waitFor(`${types.join(', ')} of ${clientId}`, async () => {
    const docs = await stack.db.collection<Doc>('events').find({ clientId }).sort({ seq: 1 }).toArray()
    return types.every((type) => docs.some((d) => d.type === type)) && docs
  }, 20_000, 200)

test('Server Keep Alive: advertised and enforced for MQTT 5, not imposed on 3.1.1', async (t) => {
  const stack = await startStack(t, { functions: {}, broker: { maxKeepAliveSeconds: 2 } })
  const port = stack.mqttPort

  await t.test('[MQTT-3.2.2-21] keepalive 0 or above the limit: the CONNACK carries Server Keep Alive 2; within it: none', async (t) => {
    for (const [keepalive, expected] of [[0, 2], [60, 2], [1, undefined], [2, undefined]] as const) {
      const raw = await sessionV5(t, port, `ska-${keepalive}`, { keepalive })
      assert.equal((await raw.packet('connack')).properties?.serverKeepAlive, expected, `keepalive ${keepalive}`)
      raw.socket.destroy()
    }
  })

  await t.test('[MQTT-3.2.2-22] [MQTT-3.1.2-22] a client that asked for 0 and stays silent is closed after 1.5 x 2 s with DISCONNECT 0x8D; events say so', async (t) => {
    const raw = await sessionV5(t, port, 'ska-silent', { keepalive: 0 })
    const start = performance.now()
    await raw.closed
    const after = performance.now() - start
    // 3 s by the spec; a loaded 2-core box may add a little, never remove
    assert.ok(after > 2500 && after < 10_000, `closed after ${Math.round(after)} ms`)
    assert.deepEqual(raw.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x8d])
    const docs = await eventsOf(stack, 'ska-silent', ['clientConnected', 'keepaliveTimeout', 'clientDisconnected'])
    assert.equal(docs.find((d) => d.type === 'clientConnected')?.keepalive, 2, 'the keepalive as granted')
    const gone = docs.find((d) => d.type === 'clientDisconnected')
    assert.deepEqual([gone?.reason, gone?.reasonCode, gone?.reasonCodeFrom], ['keepalive-timeout', 0x8d, 'broker'])
  })

  await t.test('a client that pings within the Server Keep Alive stays', async (t) => {
    const raw = await sessionV5(t, port, 'ska-pinging', { keepalive: 0 })
    for (let i = 0; i < 4; i++) {
      await sleep(1000)
      raw.send({ cmd: 'pingreq' })
    }
    await raw.packet('pingresp', 3)
    assert.equal(raw.socket.destroyed, false)
  })

  await t.test('MQTT 3.1.1 keepalive 0 is accepted (CONNACK 0, not the reserved 6) and not held to the limit', async (t) => {
    const raw = await rawClient(t, port, 4)
    raw.send(connectPacket311('ska-311', { keepalive: 0 }))
    const connack = (await raw.next('connack')) as { returnCode?: number }
    assert.equal(connack.returnCode, 0)
    await sleep(4000)
    assert.equal(raw.socket.destroyed, false, 'still connected past 1.5 x 2 s')
  })
})

test('[MQTT-3.1.2-22] without a server limit, an MQTT 5 client that misses its own keepalive gets DISCONNECT 0x8D', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true })
  const raw = await sessionV5(t, stack.mqttPort, 'ka-own', { keepalive: 1 })
  assert.equal((await raw.packet('connack')).properties?.serverKeepAlive, undefined)
  await raw.closed
  assert.deepEqual(raw.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x8d])
})

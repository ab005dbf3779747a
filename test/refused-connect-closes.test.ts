import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { Packet } from 'mqtt-packet'
import { WebSocket } from 'ws'
import mqttPacket from 'mqtt-packet'
import { connected, securityFiles } from './helpers/auth.ts'
import { connectPacket, rawClient } from './helpers/raw-mqtt.ts'
import { startStack } from './helpers/stack.ts'

/*
 * A refused CONNECT: the CONNACK with its error code, then the connection closed at
 * once [MQTT-3.2.2-5] (3.1.1) / [MQTT-3.2.2-7] and §4.13 (5.0). Seen before: the socket
 * stayed open for seconds after CONNACK 5, holding a descriptor per refused client.
 */

/** The bound between the CONNACK and the close: one event-loop turn in practice, generous for a busy 2-core box. */
const CLOSE_WITHIN_MS = 1000

async function refusedAndClosed(t: TestContext, port: number, protocolVersion: 4 | 5, extra: Parameters<typeof connectPacket>[1]): Promise<{ code: number | undefined; closeMs: number; sent: Packet[] }> {
  const raw = await rawClient(t, port, protocolVersion)
  raw.send(connectPacket(extra?.clientId ?? 'refused', { protocolVersion, ...extra }))
  const connack = (await raw.next('connack')) as Packet & { returnCode?: number; reasonCode?: number }
  const at = performance.now()
  await Promise.race([raw.closed, new Promise((r) => setTimeout(r, 10_000))])
  const closeMs = raw.socket.closed ? performance.now() - at : Infinity
  return { code: protocolVersion === 5 ? connack.reasonCode : connack.returnCode, closeMs, sent: raw.packets }
}

test('a refused CONNECT is answered and its connection closed within 1 s', async (t) => {
  const files = await securityFiles(t, ['alice', 'bob'], undefined)
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { auth: 'required', usersFile: files.usersFile, clientIdPattern: '^[a-z0-9-]+$' } })
  const port = stack.mqttPort
  await connected(t, port, { clientId: 'held-id', username: 'alice', password: 'pw-1234' })
  const bob = { username: 'bob', password: Buffer.from('pw-1234') }
  const cases: { name: string; version: 4 | 5; extra: Parameters<typeof connectPacket>[1]; code: number }[] = [
    { name: '3.1.1 no credentials: CONNACK 5 [MQTT-3.2.2-5]', version: 4, extra: { clientId: 'no-creds-4' }, code: 5 },
    { name: '3.1.1 bad password: CONNACK 4 [MQTT-3.2.2-5]', version: 4, extra: { clientId: 'bad-pw-4', username: 'alice', password: Buffer.from('nope') }, code: 4 },
    { name: '3.1.1 client id refused: CONNACK 2 [MQTT-3.1.3-9]', version: 4, extra: { clientId: 'Bad Id', username: 'alice', password: Buffer.from('pw-1234') }, code: 2 },
    { name: '5.0 no credentials: CONNACK 0x87 [MQTT-3.2.2-7]', version: 5, extra: { clientId: 'no-creds-5' }, code: 0x87 },
    { name: '5.0 bad password: CONNACK 0x86 [MQTT-3.2.2-7]', version: 5, extra: { clientId: 'bad-pw-5', username: 'alice', password: Buffer.from('nope') }, code: 0x86 },
    { name: '5.0 client id refused: CONNACK 0x85 [MQTT-3.2.2-7]', version: 5, extra: { clientId: 'Bad Id', username: 'alice', password: Buffer.from('pw-1234') }, code: 0x85 },
    { name: '3.1.1 client id held by another user: CONNACK 5 [MQTT-3.2.2-5]', version: 4, extra: { clientId: 'held-id', ...bob }, code: 5 },
    { name: '5.0 client id held by another user: CONNACK 0x87 [MQTT-3.2.2-7]', version: 5, extra: { clientId: 'held-id', ...bob }, code: 0x87 },
    { name: '5.0 Authentication Method: CONNACK 0x8C [MQTT-4.12.0-1]', version: 5, extra: { clientId: 'auth-method-5', properties: { authenticationMethod: 'SCRAM-SHA-1' } }, code: 0x8c },
  ]
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const { code, closeMs, sent } = await refusedAndClosed(t, port, c.version, c.extra)
      assert.equal(code, c.code)
      assert.ok(closeMs < CLOSE_WITHIN_MS, `closed ${Math.round(closeMs)} ms after the CONNACK`)
      // [MQTT-3.2.2-5]: nothing after the CONNACK
      assert.deepEqual(sent.map((p) => p.cmd), ['connack'])
    })
  }
})

test('over WebSocket too: the refused connection\'s WebSocket closes within 1 s of its CONNACK', async (t) => {
  const files = await securityFiles(t, ['alice'], undefined)
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { auth: 'required', usersFile: files.usersFile } })
  for (const protocolVersion of [4, 5] as const) {
    const ws = new WebSocket(`ws://127.0.0.1:${stack.wsPort}/mqtt`, 'mqtt')
    t.after(() => ws.terminate())
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    const closed = new Promise<number>((resolve) => ws.once('close', () => resolve(performance.now())))
    // aedes writes a packet in pieces, each its own WebSocket frame
    const size = protocolVersion === 4 ? 4 : 5
    const connack = new Promise<{ at: number; bytes: Buffer }>((resolve) => {
      let bytes = Buffer.alloc(0)
      ws.on('message', (data: Buffer) => {
        bytes = Buffer.concat([bytes, data])
        if (bytes.length >= size) resolve({ at: performance.now(), bytes })
      })
    })
    ws.send(mqttPacket.generate(connectPacket(`ws-no-creds-${protocolVersion}`, { protocolVersion }), { protocolVersion }))
    const got = await connack
    // 3.1.1: return code 5 (Not authorized); 5.0: reason 0x87, no properties
    assert.deepEqual([...got.bytes], protocolVersion === 4 ? [0x20, 0x02, 0x00, 0x05] : [0x20, 0x03, 0x00, 0x87, 0x00])
    const closeMs = (await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Infinity), 10_000))])) - got.at
    assert.ok(closeMs < CLOSE_WITHIN_MS, `MQTT ${protocolVersion}: closed ${Math.round(closeMs)} ms after the CONNACK`)
  }
})

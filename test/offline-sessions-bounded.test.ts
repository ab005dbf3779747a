import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { mqfn, processStack, ready } from './helpers/processes.ts'
import { adminPortOf, metric } from './helpers/slow-clients.ts'
import { sleep, unique, waitFor } from './helpers/stack.ts'

/*
 * Issue 14 item 3: a persistent session's queue is bounded (count; bytes alike) and a
 * session not seen for MQFN_SESSION_EXPIRY_SECONDS is removed with its queue, with a
 * clientDisconnected event of reason `session-expired` — in memory and in Redis.
 */

const TOKEN = 'offline-sessions-test-token-0123456789'

async function session(t: TestContext, port: number, clientId: string): Promise<{ client: MqttClient; got: string[]; sessionPresent: boolean }> {
  const client = mqtt.connect({ host: '127.0.0.1', port, clientId, clean: false, reconnectPeriod: 0 })
  t.after(() => client.end(true))
  const got: string[] = []
  client.on('message', (_topic, payload) => got.push(payload.toString()))
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => client.once('connect', resolve).once('error', reject))
  return { client, got, sessionPresent: connack.sessionPresent }
}

for (const persistence of ['memory', 'redis'] as const) {
  test(`${persistence} persistence: a persistent session keeps at most maxOfflineMessages, the rest counted as dropped; unseen for sessionExpirySeconds it is removed with a session-expired event`, async (t) => {
    const stack = await processStack(t, {})
    const worker = mqfn(t, 'worker', stack.workerEnv())
    const broker = mqfn(t, 'broker', stack.brokerEnv({
      MQFN_PERSISTENCE: persistence, MQFN_ADMIN_TOKEN: TOKEN, MQFN_MAX_OFFLINE_MESSAGES: '50', MQFN_SESSION_EXPIRY_SECONDS: '10',
    }))
    await Promise.all([ready(worker, 'worker ready', 60_000), ready(broker, 'broker ready', 60_000)])
    const adminPort = adminPortOf(broker)
    const id = unique('offline')
    const topic = `${id}/t`

    const first = await session(t, stack.mqttPort, id)
    await first.client.subscribeAsync(`${id}/#`, { qos: 1 })
    await first.client.endAsync()

    // 80 published while it is away: every one acknowledged to the publisher, 50 kept
    const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${stack.mqttPort}`, { clientId: unique('pub') })
    t.after(() => publisher.end(true))
    // ten at a time: on a busy machine 80 one by one could outlast the session's expiry
    for (let i = 0; i < 80; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => publisher.publishAsync(topic, String(i + j), { qos: 1 })))
    assert.equal(await metric(adminPort, TOKEN, 'mqfn_broker_messages_dropped_total', { reason: 'offline-queue-full' }), 30)

    const back = await session(t, stack.mqttPort, id)
    assert.equal(back.sessionPresent, true)
    await waitFor('the 50 queued messages', () => back.got.length >= 50, 15_000)
    await sleep(500)
    assert.equal(back.got.length, 50, 'the 50 queued, no more')
    assert.equal(new Set(back.got).size, 50, 'each once')
    assert.ok(back.got.every((m) => Number(m) >= 0 && Number(m) < 80))
    await back.client.endAsync()

    // away again with 10 queued, then longer than sessionExpirySeconds
    await Promise.all(Array.from({ length: 10 }, (_, j) => publisher.publishAsync(topic, String(80 + j), { qos: 1 })))
    const events = stack.db.collection<{ type: string; clientId: string; reason?: string; error?: { message: string } }>('events')
    const expired = await waitFor('the session-expired event', () => events.findOne({ type: 'clientDisconnected', clientId: id, reason: 'session-expired' }), 40_000, 250)
    assert.match(expired.error?.message ?? '', /removed with 10 queued messages/)
    assert.equal(await metric(adminPort, TOKEN, 'mqfn_broker_messages_dropped_total', { reason: 'session-expired' }), 10)

    // its subscription went with it: nothing queued any more, nothing delivered
    await publisher.publishAsync(topic, 'after expiry', { qos: 1 })
    const fresh = await session(t, stack.mqttPort, id)
    assert.equal(fresh.sessionPresent, false)
    await sleep(1000)
    assert.deepEqual(fresh.got, [])
    assert.equal(broker.exitCode, null)
  })
}

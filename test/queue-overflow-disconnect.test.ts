import assert from 'node:assert/strict'
import { test } from 'node:test'
import mqtt from 'mqtt'
import { mqfn, processStack, ready } from './helpers/processes.ts'
import { adminPortOf, metric, stuckSubscriber } from './helpers/slow-clients.ts'
import { waitFor } from './helpers/stack.ts'

/*
 * MQFN_QUEUE_OVERFLOW=disconnect: a client whose outbound queue passes its bound is
 * disconnected (MQTT 5 DISCONNECT 0x97 Quota exceeded when its socket still takes
 * bytes, else the close), with reason `limit-exceeded`; QoS 0 went first; others go on.
 */

const TOKEN = 'queue-overflow-test-token-0123456789'

test('queueOverflow disconnect: a stuck MQTT 5 subscriber past its queue bound is disconnected with reason limit-exceeded; the publisher and a bystander go on', async (t) => {
  const stack = await processStack(t, {})
  const worker = mqfn(t, 'worker', stack.workerEnv())
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_ADMIN_TOKEN: TOKEN, MQFN_QUEUE_OVERFLOW: 'disconnect', MQFN_MAX_QUEUED_MESSAGES_PER_CLIENT: '50' }))
  await Promise.all([ready(worker, 'worker ready', 60_000), ready(broker, 'broker ready', 60_000)])
  const adminPort = adminPortOf(broker)
  const stuck = await stuckSubscriber(stack.mqttPort, 'overflow-stuck', 'of/#', { protocolVersion: 5 })
  t.after(() => stuck.destroy())
  const url = `mqtt://127.0.0.1:${stack.mqttPort}`
  const publisher = await mqtt.connectAsync(url, { clientId: 'of-pub' })
  const bystander = await mqtt.connectAsync(url, { clientId: 'of-bystander' })
  t.after(() => { publisher.end(true); bystander.end(true) })
  let received = 0
  bystander.on('message', () => received++)
  await bystander.subscribeAsync('of/#', { qos: 1 })

  const payload = Buffer.alloc(8 * 1024, 0x62)
  for (let i = 0; i < 1500; i += 50) {
    await Promise.all(Array.from({ length: 50 }, () => publisher.publishAsync('of/data', payload, { qos: 1 })))
  }
  await waitFor('every message at the bystander', () => received === 1500, 30_000)

  const events = stack.db.collection<{ type: string; clientId: string; reason?: string; error?: { code?: string } }>('events')
  const gone = await waitFor('the stuck client disconnected', () => events.findOne({ type: 'clientDisconnected', clientId: 'overflow-stuck' }), 30_000, 250)
  assert.equal(gone.reason, 'limit-exceeded')
  assert.equal(gone.error?.code, 'MQFN_ERR_LIMIT_EXCEEDED')
  assert.ok(await metric(adminPort, TOKEN, 'mqfn_broker_messages_dropped_total', { reason: 'queue-full-disconnect' }) > 0)
  assert.equal(await events.countDocuments({ type: 'clientDisconnected', clientId: { $in: ['of-pub', 'of-bystander'] } }), 0, 'nobody else disconnected')
  assert.equal(broker.exitCode, null)
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import { connect, startStack, waitFor } from './helpers/stack.ts'

/*
 * Request / response over MQTT 5 [MQTT-4.10]: a device publishes a request with a
 * Response Topic and Correlation Data; the function answers with ctx.reply, and the
 * answer arrives on that topic with the same correlation data. MQTT.js end to end.
 */

const functions = {
  'published.ts': `import { defineHandler, isMqfnError } from 'mqtt-functions'
export const config = { topic: ['rpc/+', 'notify/+'] }
export default defineHandler('published', async (event, ctx) => {
  if (event.topic.startsWith('notify/')) {
    // ctx.publish with properties; a 3.1.1 subscriber gets the same message without them
    await ctx.publish('news/' + event.topic.split('/')[1], 'fresh', { qos: 1, properties: { contentType: 'text/plain', userProperties: { source: 'fn' }, messageExpiryInterval: 120 } })
    return
  }
  try {
    const n = Number(event.payload.toString())
    await ctx.reply({ square: n * n }, { contentType: 'application/json', userProperties: { handler: ctx.handler } })
  } catch (err) {
    await ctx.db.collection('refusals').insertOne({ topic: event.topic, code: isMqfnError(err) ? err.code : 'other', message: String(err) })
  }
})
`,
}

test('ctx.reply answers an MQTT 5 request on its response topic with its correlation data', async (t) => {
  const stack = await startStack(t, { functions })
  const device = await connect(stack.mqttPort, { clientId: 'rpc-device', protocolVersion: 5 })
  await device.subscribeAsync('rpc/answers/rpc-device', { qos: 1 })
  const answers: IPublishPacket[] = []
  device.on('message', (_topic, _payload, packet) => answers.push(packet))

  // two requests in flight, told apart only by their correlation data
  const ids = [Buffer.from([0x00, 0xff, 0x10]), Buffer.from('req-2')] as const
  await device.publishAsync('rpc/square', '7', { qos: 1, properties: { responseTopic: 'rpc/answers/rpc-device', correlationData: ids[0] } })
  await device.publishAsync('rpc/square', '12', { qos: 1, properties: { responseTopic: 'rpc/answers/rpc-device', correlationData: ids[1] } })
  await waitFor('two answers', () => answers.length === 2, 30_000)

  const byId = new Map(answers.map((a) => [Buffer.from(a.properties?.correlationData ?? []).toString('hex'), a]))
  for (const [id, square] of [[ids[0], 49], [ids[1], 144]] as const) {
    const answer = byId.get(id.toString('hex'))
    assert.ok(answer, `an answer with correlation data ${id.toString('hex')}`)
    assert.equal(answer.topic, 'rpc/answers/rpc-device')
    assert.deepEqual(JSON.parse(answer.payload.toString()), { square })
    // the request's QoS; the properties the function added
    assert.equal(answer.qos, 1)
    assert.equal(answer.properties?.contentType, 'application/json')
    assert.deepEqual({ ...answer.properties?.userProperties }, { handler: 'published' })
  }
})

test('ctx.reply to a message without a response topic throws MQFN_ERR_REPLY; ctx.publish properties reach MQTT 5 subscribers only', async (t) => {
  const stack = await startStack(t, { functions })
  const v4 = await connect(stack.mqttPort, { clientId: 'rpc-v4', protocolVersion: 4 })
  await v4.publishAsync('rpc/square', '3', { qos: 1 })
  const [refusal] = await waitFor('the refusal', async () => {
    const found = await stack.db.collection('refusals').find({}).toArray()
    return found.length > 0 && found
  }, 30_000, 200)
  assert.equal(refusal?.code, 'MQFN_ERR_REPLY')
  assert.match(String(refusal?.message), /ctx\.reply: the message has no response topic/)

  const v5 = await connect(stack.mqttPort, { clientId: 'news-v5', protocolVersion: 5 })
  await v5.subscribeAsync('news/#', { qos: 1 })
  await v4.subscribeAsync('news/#', { qos: 1 })
  const got5 = new Promise<IPublishPacket>((resolve) => v5.once('message', (_t, _p, packet) => resolve(packet)))
  const got4 = new Promise<IPublishPacket>((resolve) => v4.once('message', (_t, _p, packet) => resolve(packet)))
  await v5.publishAsync('notify/a', 'x', { qos: 1 })
  const [p5, p4] = await Promise.all([got5, got4])
  assert.equal(p5.properties?.contentType, 'text/plain')
  assert.deepEqual({ ...p5.properties?.userProperties }, { source: 'fn' })
  // [MQTT-3.3.2-6]: the remaining lifetime, at most what was set
  assert.ok((p5.properties?.messageExpiryInterval ?? 0) > 0 && (p5.properties?.messageExpiryInterval ?? 0) <= 120)
  assert.equal(p4.properties, undefined)
  assert.equal(p4.payload.toString(), 'fresh')
})

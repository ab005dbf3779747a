import assert from 'node:assert/strict'
import { test } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { sleep, startStack, waitFor } from './helpers/stack.ts'
import { connectV5, sessionV5 } from './helpers/mqtt5.ts'

/*
 * MQTT 5.0 limits each side sets the other: the client's Maximum Packet Size, the
 * broker's Receive Maximum and Topic Alias Maximum. Raw sockets, so the exact
 * packets the broker sends (and does not send) are seen.
 */

test('MQTT 5 limits in both directions', async (t) => {
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { receiveMaximum: 2, topicAliasMaximum: 4 } })
  const port = stack.mqttPort
  const publisher = await connectV5(port, { clientId: 'lim-publisher' })

  await t.test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a PUBLISH larger than the client allows is not sent; later ones are, and the session does not send it again', async (t) => {
    const session = { clean: false, properties: { sessionExpiryInterval: 300, maximumPacketSize: 64 } }
    const raw = await sessionV5(t, port, 'lim-small', session)
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'lim/size', qos: 1 }] })
    await raw.packet('suback')
    await publisher.publishAsync('lim/size', 'x'.repeat(200), { qos: 1 })
    await publisher.publishAsync('lim/size', 'fits', { qos: 1 })
    const publish = await raw.packet('publish')
    assert.equal(publish.payload.toString(), 'fits')
    raw.send({ cmd: 'puback', messageId: publish.messageId, reasonCode: 0 })
    await sleep(200)
    assert.equal(raw.packets.filter((p) => p.cmd === 'publish').length, 1)
    // no packet over 64 bytes went out (fixed header of 2 bytes at these sizes)
    for (const p of raw.packets) assert.ok((p as { length: number }).length + 2 <= 64, `${p.cmd} of ${(p as { length: number }).length + 2} bytes`)
    raw.socket.destroy()
    await raw.closed
    const again = await sessionV5(t, port, 'lim-small', session)
    assert.equal((await again.packet('connack')).sessionPresent, true)
    await publisher.publishAsync('lim/size', 'after', { qos: 1 })
    const next = await again.packet('publish')
    assert.equal(next.payload.toString(), 'after', 'the dropped message was treated as sent, not queued for the next connection')
  })

  await t.test('[MQTT-3.4.2-2] the Reason String is left out of a PUBACK that would not fit the client\'s Maximum Packet Size', async (t) => {
    const raw = await sessionV5(t, port, 'lim-reason', { properties: { maximumPacketSize: 16 } })
    raw.send({ cmd: 'publish', topic: 'lim/pfi', qos: 1, messageId: 5, payload: Buffer.from([0xff]), retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    const puback = await raw.packet('puback')
    assert.equal(puback.reasonCode, 0x99)
    assert.equal(puback.properties?.reasonString, undefined)
    // 0x40, length 4, message id 0x0005, reason 0x99, property length 0
    assert.deepEqual(raw.bytes().subarray(-6), Buffer.from([0x40, 0x04, 0x00, 0x05, 0x99, 0x00]))
  })

  await t.test('[MQTT-3.3.4-9] Receive Maximum: a QoS 2 PUBLISH past the advertised 2 unacknowledged gets DISCONNECT 0x93', async (t) => {
    const raw = await sessionV5(t, port, 'lim-receive-max')
    assert.equal((await raw.packet('connack')).properties?.receiveMaximum, 2)
    const publish = (messageId: number) => raw.send({ cmd: 'publish', topic: 'lim/rm', qos: 2, messageId, payload: Buffer.from('x'), retain: false, dup: false })
    publish(1)
    publish(2)
    await raw.packet('pubrec', 1)
    // a PUBREL completes one exchange and frees its slot
    raw.send({ cmd: 'pubrel', messageId: 1, reasonCode: 0 })
    await raw.packet('pubcomp')
    publish(3)
    await raw.packet('pubrec', 2)
    assert.equal(raw.socket.destroyed, false)
    // a retransmission (same Packet Identifier, DUP) of one in flight takes no new slot
    raw.send({ cmd: 'publish', topic: 'lim/rm', qos: 2, messageId: 3, payload: Buffer.from('x'), retain: false, dup: true })
    await raw.packet('pubrec', 3)
    publish(4)
    await raw.closed
    assert.deepEqual(raw.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x93])
  })

  await t.test('[MQTT-3.3.4-9] Receive Maximum: QoS 1 publishes acknowledged one at a time never exceed it', async () => {
    const client = await connectV5(port, { clientId: 'lim-rm-qos1' })
    for (let i = 0; i < 10; i++) await client.publishAsync('lim/rm1', String(i), { qos: 1 })
    assert.equal(client.connected, true)
  })

  await t.test('Topic aliases [MQTT-3.3.2-8] [MQTT-3.3.2-9] [MQTT-3.3.2-12]', async (t) => {
    const sub = await connectV5(port, { clientId: 'lim-alias-sub' })
    const got: string[] = []
    sub.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`))
    await sub.subscribeAsync('lim/alias/#', { qos: 1 })

    await t.test('[MQTT-3.3.2-12] an alias set with a topic is used by a PUBLISH with an empty topic', async (t) => {
      const raw = await sessionV5(t, port, 'lim-alias-ok')
      assert.equal((await raw.packet('connack')).properties?.topicAliasMaximum, 4)
      raw.send({ cmd: 'publish', topic: 'lim/alias/a', qos: 1, messageId: 1, payload: Buffer.from('1'), retain: false, dup: false, properties: { topicAlias: 4 } })
      raw.send({ cmd: 'publish', topic: '', qos: 1, messageId: 2, payload: Buffer.from('2'), retain: false, dup: false, properties: { topicAlias: 4 } })
      await waitFor('two messages', () => got.length === 2)
      assert.deepEqual(got, ['lim/alias/a=1', 'lim/alias/a=2'])
    })

    for (const [clause, alias] of [['[MQTT-3.3.2-8]', 0], ['[MQTT-3.3.2-9]', 5]] as const) {
      await t.test(`${clause} alias ${alias} gets DISCONNECT 0x94 (Topic Alias invalid)`, async (t) => {
        const raw = await sessionV5(t, port, `lim-alias-${alias}`)
        // mqtt-packet refuses to encode alias 0, so the property is written by hand
        const valid = { cmd: 'publish' as const, topic: 'lim/alias/b', qos: 0 as const, payload: Buffer.from('z'), retain: false, dup: false, properties: { topicAlias: 1 } }
        const bytes = Buffer.from(mqttPacket.generate(valid, { protocolVersion: 5 }))
        // properties: length 3, id 0x23 (Topic Alias), two-byte value
        const at = bytes.indexOf(Buffer.from([0x03, 0x23, 0x00, 0x01]))
        bytes.writeUInt16BE(alias, at + 2)
        raw.socket.write(bytes)
        await raw.closed
        assert.deepEqual(raw.packets.filter((p) => p.cmd === 'disconnect').map((p) => p.reasonCode), [0x94])
      })
    }
  })
})

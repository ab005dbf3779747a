import assert from 'node:assert/strict'
import { test } from 'node:test'
import { mqfn, processStack, ready, type MqfnProcess } from './helpers/processes.ts'
import { connect, unique, waitFor } from './helpers/stack.ts'

type Line = Record<string, unknown>

function jsonLines(p: MqfnProcess): Line[] {
  return p.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line)
}

const LOGS = `import { defineHandler } from 'mqtt-functions'
export default defineHandler('published', async (event, ctx) => {
  ctx.log.info({ reading: Number(event.payload.toString()) }, 'reading stored')
})
`
const BROKEN = `import { defineHandler } from 'mqtt-functions'
export const config = { attempts: 1 }
export default defineHandler('published', async () => {
  throw new Error('sensor offline')
})
`

test('grep <eventId> follows an event from the broker to each handler: every line carries eventId, clientId and handler', async (t) => {
  const stack = await processStack(t, { 'published.ts': LOGS, 'published/broken.ts': BROKEN })
  // the broker logs each captured event at debug level only
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_LOG_LEVEL: 'debug' }))
  await ready(broker, 'broker ready')
  const worker = mqfn(t, 'worker', stack.workerEnv())
  await ready(worker, 'worker ready')
  const clientId = unique('logger')
  const client = await connect(stack.mqttPort, { clientId })
  await client.publishAsync('sensors/log/temp', '21.5', { qos: 1 })

  const stored = await waitFor('the handler\'s log line', () => jsonLines(worker).find((l) => l.msg === 'reading stored'), 20_000, 100)
  const eventId = stored.eventId
  assert.equal(typeof eventId, 'string')
  assert.deepEqual(
    { role: stored.role, level: stored.level, eventId, clientId: stored.clientId, handler: stored.handler, event: stored.event, reading: stored.reading },
    { role: 'worker', level: 30, eventId, clientId, handler: 'published', event: 'published', reading: 21.5 },
  )

  await waitFor('the dead letter\'s log line', () => jsonLines(worker).some((l) => l.msg === 'dead-lettered'), 20_000, 100)
  const workerLines = jsonLines(worker).filter((l) => l.eventId === eventId)
  assert.deepEqual(workerLines.map((l) => [l.msg, l.handler, l.clientId]).sort(), [
    ['dead-lettered', 'published/broken', clientId],
    ['handler failed', 'published/broken', clientId],
    ['reading stored', 'published', clientId],
  ])
  const failed = workerLines.find((l) => l.msg === 'handler failed') as Line
  assert.equal((failed.err as { message?: string }).message, 'sensor offline')
  assert.equal(workerLines.find((l) => l.msg === 'dead-lettered')?.err, 'sensor offline')

  const brokerLines = jsonLines(broker).filter((l) => l.eventId === eventId)
  assert.deepEqual(brokerLines.map((l) => ({ msg: l.msg, clientId: l.clientId, type: l.type, role: l.role })), [
    { msg: 'event captured', clientId, type: 'published', role: 'broker' },
  ])
  // every broker line about this client names it
  const connected = jsonLines(broker).filter((l) => l.msg === 'event captured' && l.type === 'clientConnected')
  assert.deepEqual(connected.map((l) => l.clientId), [clientId])
})

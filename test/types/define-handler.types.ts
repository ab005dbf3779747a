/*
 * Type tests: `npm run typecheck` fails if defineHandler stops narrowing events.
 * Nothing here runs.
 */
import { defineHandler, type HandlerConfig } from 'mqtt-functions'

defineHandler('published', async (event, ctx) => {
  const topic: string = event.topic
  const bytes: Buffer = event.payload
  const qos: 0 | 1 | 2 = event.qos
  const seq: number = event.seq
  await ctx.publish(`${topic}/ack`, bytes, { qos, retain: false })
  ctx.log.info({ seq, attempt: ctx.attempt, aborted: ctx.signal.aborted })
})

// MQTT 5 properties: correlation data is bytes for handlers (base64 only on the wire)
defineHandler('published', async (event, ctx) => {
  const correlation: Buffer | undefined = event.properties?.correlationData
  const responseTopic: string | undefined = event.properties?.responseTopic
  void correlation
  void responseTopic
  await ctx.reply('ok', { contentType: 'text/plain', userProperties: { a: ['1', '2'] } })
  // @ts-expect-error a reply's correlation data is the request's
  await ctx.reply('ok', { correlationData: 'x' })
  await ctx.publish('t', 'x', { properties: { correlationData: new Uint8Array([1]), messageExpiryInterval: 5 } })
})

defineHandler('clientConnected', (event) => {
  const expiry: number | undefined = event.properties?.sessionExpiryInterval
  return expiry
})

defineHandler('clientDisconnected', (event) => {
  const reason: 'disconnect' | 'keepalive-timeout' | 'takeover' | 'protocol-error' | 'not-authorized' | 'shutdown' | 'socket-error' | 'socket-closed' | 'connect-timeout' | 'limit-exceeded' | 'session-expired' = event.reason
  // @ts-expect-error a disconnect has no topic
  void event.topic
  return reason
})

defineHandler('connectionError', (event) => {
  // a refused connection may have no client id yet
  const id: string | null = event.clientId
  return id
})

defineHandler('subscribed', (event) => event.subscriptions.map((s) => s.topic))

// @ts-expect-error not an event name
defineHandler('messageArrived', () => {})

// @ts-expect-error handlers of published get published events, not subscribed ones
defineHandler('published', (event: { type: 'subscribed' }) => event)

const config: HandlerConfig = { topic: ['a/#', 'b/+'], attempts: 5, timeout: 1000, backoff: 100, concurrency: 4 }
// @ts-expect-error unknown key
const bad: HandlerConfig = { retries: 3 }
void config
void bad

// a payload schema types event.data
import { z } from 'zod'
defineHandler('published', { payload: z.object({ celsius: z.number() }) }, (event) => {
  const celsius: number = event.data.celsius
  // @ts-expect-error not in the schema
  void event.data.fahrenheit
  return celsius + event.topic.length
})

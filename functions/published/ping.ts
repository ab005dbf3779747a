import { defineHandler, type HandlerConfig } from 'mqtt-functions'

export const config: HandlerConfig = { topic: 'devices/+/ping', timeout: 5000 }

/** Answers `devices/<id>/ping` on `devices/<id>/pong` through the broker, with the ping's payload. */
export default defineHandler('published', async (event, ctx) => {
  const device = event.topic.split('/')[1]
  await ctx.publish(`devices/${device}/pong`, event.payload, { qos: 1 })
})

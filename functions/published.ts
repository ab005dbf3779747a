import { defineHandler, type HandlerConfig } from 'mqtt-functions'

/** Only sensor readings: `sensors/<room>/<quantity>`. */
export const config: HandlerConfig = { topic: 'sensors/#', attempts: 5 }

/**
 * Stores each sensor reading in `readings`. The event id is the document id, so a
 * retried event writes the same document again instead of a second one.
 */
export default defineHandler('published', async (event, ctx) => {
  const [, room, quantity] = event.topic.split('/')
  const text = event.payload.toString('utf8')
  const value = Number(text)
  await ctx.db.collection<{ _id: string }>('readings').updateOne(
    { _id: event.id },
    {
      $set: {
        topic: event.topic,
        room: room ?? null,
        quantity: quantity ?? null,
        value: Number.isFinite(value) && text.trim() !== '' ? value : null,
        raw: text,
        clientId: event.clientId,
        at: new Date(event.ts),
      },
    },
    { upsert: true },
  )
  ctx.log.info({ topic: event.topic, value }, 'reading stored')
})

import { defineHandler, isDuplicateKey, type HandlerConfig } from 'mqtt-functions'

/** Only sensor readings: `sensors/<room>/<quantity>`. */
export const config: HandlerConfig = { topic: 'sensors/#', attempts: 5 }

interface Reading {
  _id: string
  topic: string
  room: string | null
  quantity: string | null
  value: number | null
  raw: string
  clientId: string
  at: Date
}

/**
 * Stores each sensor reading in `readings`. The event id is the document id, so a
 * retried or replayed event finds its reading already there (duplicate key, E11000) and
 * succeeds without a second one. An insert, not an upsert by `_id`: FerretDB 1.x scans
 * the collection for any `_id` filter, while an insert's duplicate check uses the index.
 * Concurrent events' inserts share one round trip (ctx.db groups them: docs/handlers.md).
 */
export default defineHandler('published', async (event, ctx) => {
  const [, room, quantity] = event.topic.split('/')
  const text = event.payload.toString('utf8')
  const value = Number(text)
  try {
    await ctx.db.collection<Reading>('readings').insertOne({
      _id: event.id,
      topic: event.topic,
      room: room ?? null,
      quantity: quantity ?? null,
      value: Number.isFinite(value) && text.trim() !== '' ? value : null,
      raw: text,
      clientId: event.clientId,
      at: new Date(event.ts),
    })
  } catch (err) {
    if (!isDuplicateKey(err)) throw err
  }
  ctx.log.info({ topic: event.topic, value }, 'reading stored')
})

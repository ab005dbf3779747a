import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import type { WireEvent } from '../../common/events.ts'
import { createLogger } from '../../common/logger.ts'
import { createRedis } from '../../common/redis.ts'
import { throttled } from '../../common/throttle.ts'
import { ALIVE_EVERY_MS, type FromThread, type ThreadSetup, type ToThread } from './capture-thread-messages.ts'
import { startCapture } from './output.ts'

/*
 * The capture thread (MQFN_CAPTURE_THREAD=all): the same store, pump and recovery as on
 * the broker's thread (output.ts), fed flushes of JSON by capture-thread-sink.ts. Its
 * own connections; it renews its store's alive key itself, so a thread that dies or
 * hangs is taken for a dead broker and its stored flushes are recovered
 * (capture-store.ts).
 */

if (!parentPort) throw new Error('capture-thread.ts runs as a worker thread')
const port: MessagePort = parentPort
const setup = workerData as ThreadSetup
const log = createLogger('broker', setup.logLevel).child({ thread: 'capture', tag: setup.tag })
const send = (message: FromThread) => port.postMessage(message)

const redis = createRedis(setup.redisUrl, `mqfn-broker-capture:${setup.brokerId}`)
redis.on('error', throttled(5000, (suppressed, err) => log.warn({ err: (err as Error).message, suppressed }, 'redis connection error')))

let received = 0
const pending: ToThread[] = []
let output: Awaited<ReturnType<typeof startCapture>> | undefined

// the backlog bound is kept by the broker's thread, which holds publishers back
const settings = { ...setup, captureMaxBacklogEvents: Number.MAX_SAFE_INTEGER, captureMaxBacklogBytes: Number.MAX_SAFE_INTEGER }

function handle(message: ToThread, out: NonNullable<typeof output>): void {
  if (message.kind === 'close') {
    void out.close(message.flushTimeoutMs).then(async (flushed) => {
      send({ kind: 'closed', flushed })
      if (flushed) await redis.quit().catch(() => redis.disconnect())
      else redis.disconnect()
      // nothing holds the thread open now: it ends, and the broker sees it exit
      clearInterval(alive)
      port.close()
    })
    return
  }
  const events = JSON.parse(message.json) as WireEvent[]
  received += events.length
  const last = events.length - 1
  // every event of this message joins the batcher's current flush, so the flush is stored once the last one is
  for (let i = 0; i < last; i++) out.sink.capture(events[i] as WireEvent, 0)
  const id = message.id
  out.sink.capture(events[last] as WireEvent, 0, message.wait ? (err) => send(err ? { kind: 'stored', id, error: err.message } : { kind: 'stored', id }) : undefined)
}

// a thread whose event loop is stuck stops saying so, and the broker's thread replaces it
const alive = setInterval(() => send({ kind: 'alive' }), ALIVE_EVERY_MS)

port.on('message', (message: ToThread) => {
  if (output) handle(message, output)
  else pending.push(message)
})

output = await startCapture(settings, redis, setup.tag, log, (oldestTs) => {
  // called before the batcher counts the write off its backlog; read that once it has
  queueMicrotask(() => send({ kind: 'written', events: received - (output?.sink.backlog.events ?? 0), oldestTs }))
})
for (const message of pending.splice(0)) handle(message, output)
send({ kind: 'ready' })

import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { errorMessage } from '../../common/errors.ts'
import { createRedis } from '../../common/redis.ts'
import { Pump, type PumpOptions } from './pump.ts'
import { ALIVE_EVERY_MS } from './capture-thread-messages.ts'
import type { PumpFromThread, PumpToThread } from './pump-thread.ts'

/*
 * The pump thread (MQFN_CAPTURE_THREAD=pump): a Pump (pump.ts) on a connection of its
 * own, writing the flushes the broker's batcher hands it; the store's HSET, the
 * acknowledgements and recovery stay on the broker's thread.
 */

if (!parentPort) throw new Error('capture-pump-thread.ts runs as a worker thread')
const port: MessagePort = parentPort
const setup = workerData as Omit<PumpOptions, 'redis'> & { redisUrl: string; brokerId: string }
const send = (message: PumpFromThread) => port.postMessage(message)
const redis = createRedis(setup.redisUrl, `mqfn-broker-pump:${setup.brokerId}`)
// the broker's own connection reports the outage
redis.on('error', () => {})
const pump = new Pump({ ...setup, redis })
const alive = setInterval(() => send({ kind: 'alive' }), ALIVE_EVERY_MS)

port.on('message', (m: PumpToThread) => {
  if (m.kind === 'write') {
    pump.write(m.flushes, m.retry).then(() => send({ kind: 'done', id: m.id }), (err: unknown) => send({ kind: 'done', id: m.id, error: errorMessage(err) }))
    return
  }
  clearInterval(alive)
  void pump.close().then(() => redis.quit()).catch(() => redis.disconnect()).finally(() => port.close())
})

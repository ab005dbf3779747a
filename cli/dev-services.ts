import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { WORKER_ENV } from '../runtime/config.ts'
import { installMissing, startFerretdb, startRedis, startServices, type ManagedProcess, type Services } from '../scripts/services.ts'

/*
 * The Redis and FerretDB of `mqfn dev`: data in the project's .mqfn/dev/ (git-ignored),
 * on ports that stay the same from one start to the next (first choice below, the next
 * free one if taken, then remembered in .mqfn/dev/ports.json). So a restart keeps the
 * event log, the dead letters and the URLs a user exported in another terminal.
 */

const FIRST_CHOICE = { redis: 6390, mongo: 27027 } as const

interface Ports { redis?: number; mongo?: number }

/** `port`, or the next one above it that is free on 127.0.0.1. */
async function freeFrom(port: number): Promise<number> {
  for (let p = port; p < port + 100; p++) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once('error', () => resolve(false))
      server.listen(p, '127.0.0.1', () => server.close(() => resolve(true)))
    })
    if (free) return p
  }
  throw new Error(`no free port in ${port}–${port + 99} on 127.0.0.1`)
}

export interface DevServices extends Services {
  /** Where the data lives, when dev started the servers. */
  readonly dir?: string
}

export async function startDevServices(root: string, env: NodeJS.ProcessEnv): Promise<DevServices> {
  const redisUrl = env[WORKER_ENV.redisUrl]
  const mongoUrl = env[WORKER_ENV.mongoUrl]
  const needRedis = !redisUrl
  const needMongo = !mongoUrl
  if (!needRedis && !needMongo) return startServices(env)
  await installMissing(needRedis, needMongo)
  const dir = join(root, '.mqfn', 'dev')
  await mkdir(join(dir, 'redis'), { recursive: true })
  await mkdir(join(dir, 'ferretdb'), { recursive: true })
  // a project that does not ignore .mqfn/ yet must not commit its dev data
  await writeFile(join(root, '.mqfn', '.gitignore'), '*\n')
  const portsFile = join(dir, 'ports.json')
  const saved = JSON.parse(await readFile(portsFile, 'utf8').catch(() => '{}')) as Ports
  const ports: Ports = {
    ...(needRedis ? { redis: await freeFrom(saved.redis ?? FIRST_CHOICE.redis) } : {}),
    ...(needMongo ? { mongo: await freeFrom(saved.mongo ?? FIRST_CHOICE.mongo) } : {}),
  }
  await writeFile(portsFile, `${JSON.stringify({ ...saved, ...ports })}\n`)
  const redis = ports.redis !== undefined ? await startRedis({ dir: join(dir, 'redis'), port: ports.redis }) : undefined
  let mongo: ManagedProcess | undefined
  try {
    mongo = ports.mongo !== undefined ? await startFerretdb(join(dir, 'ferretdb'), ports.mongo) : undefined
  } catch (err) {
    await redis?.stop()
    throw err
  }
  return {
    dir,
    redisUrl: redisUrl || `redis://127.0.0.1:${redis?.port}`,
    mongoUrl: mongoUrl || `mongodb://127.0.0.1:${mongo?.port}/`,
    ...(redis ? { redis } : {}),
    ...(mongo ? { mongo } : {}),
    // the data stays: that is the point
    stop: async () => void (await Promise.all([redis?.stop(), mongo?.stop()])),
  }
}

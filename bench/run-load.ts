import { fork, type ChildProcess } from 'node:child_process'
import { killOnExit } from './children.ts'
import type { FromChild, LoadJob, LoadResult, ToChild } from './load.ts'

/*
 * Forks one load process per job, starts them together once all are connected, and
 * collects their results. The load script is a plain-node bundle (see main.ts), so
 * the children carry no TypeScript loader.
 */

export interface Running {
  results: Promise<LoadResult[]>
  /** For jobs that hold on until told (idle connections). */
  stop(): void
}

function spawnJob(script: string, job: LoadJob): { child: ChildProcess; ready: Promise<void>; result: Promise<LoadResult> } {
  const child = fork(script, [JSON.stringify(job)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  killOnExit(child)
  let readyResolve: () => void = () => {}
  const ready = new Promise<void>((r) => (readyResolve = r))
  const result = new Promise<LoadResult>((resolve, reject) => {
    child.on('message', (msg: FromChild) => {
      if (msg.type === 'ready') readyResolve()
      else if (msg.type === 'result') resolve(msg.result)
      else reject(new Error(`${job.role}: ${msg.message}`))
    })
    child.once('exit', (code) => reject(new Error(`${job.role} load process exited (${code}) without a result`)))
  })
  // a process that fails before ready must not hang the run
  result.catch(() => readyResolve())
  return { child, ready, result }
}

export async function runLoad(script: string, jobs: LoadJob[], timeoutMs: number): Promise<LoadResult[]> {
  const running = startLoad(script, jobs)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      running.stop()
      reject(new Error(`load did not finish within ${timeoutMs} ms`))
    }, timeoutMs)
  })
  try {
    return await Promise.race([running.results, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export function startLoad(script: string, jobs: LoadJob[]): Running {
  const spawned = jobs.map((job) => spawnJob(script, job))
  const send = (msg: ToChild) => {
    for (const s of spawned) if (s.child.connected) s.child.send(msg)
  }
  const results = (async () => {
    await Promise.all(spawned.map((s) => s.ready))
    send({ type: 'go' })
    return Promise.all(spawned.map((s) => s.result))
  })()
  return {
    results,
    stop() {
      send({ type: 'stop' })
      setTimeout(() => {
        for (const s of spawned) s.child.kill('SIGKILL')
      }, 5000).unref()
    },
  }
}

import { parentPort, workerData } from 'node:worker_threads'
import { typeCheckFunctions } from '../typecheck.ts'

// The TypeScript compiler works synchronously for seconds: off the thread that serves mqfn dev.
parentPort?.postMessage(await typeCheckFunctions((workerData as { dir: string }).dir) ?? null)

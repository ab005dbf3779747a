import type { AddressInfo, Server } from 'node:net'
import { errorMessage, mqfnError } from '../../common/errors.ts'

/** Binds `server` (TCP, TLS, HTTP or HTTPS); resolves with the port it got (port 0 picks a free one). */
export async function listen(server: Server, port: number, host: string, what: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(mqfnError('MQFN_ERR_LISTEN', `${what} on ${host}:${port}`, errorMessage(err))))
    server.listen(port, host, () => resolve())
  })
  return (server.address() as AddressInfo).port
}

/** Resolves once the server has stopped accepting and its last connection is gone. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

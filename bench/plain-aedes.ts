import { createServer, type AddressInfo, type Socket } from 'node:net'
import { Aedes } from 'aedes'

/*
 * The baseline: aedes as our broker sets it up (in-memory persistence, a TCP
 * listener, Nagle off on every socket) and nothing captured. Prints its port.
 */
const aedes = new Aedes({ id: 'plain-aedes' })
await aedes.listen()
const server = createServer((socket: Socket) => {
  socket.setNoDelay(true)
  aedes.handle(socket)
})
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`)
})
process.on('SIGTERM', () => {
  server.close()
  aedes.close(() => process.exit(0))
})

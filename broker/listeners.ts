import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { WebSocketServer, createWebSocketStream } from 'ws'
import type { Aedes } from 'aedes'
import { errorMessage, mqfnError } from '../common/errors.ts'

export interface ListenerInfo {
  protocol: 'mqtt' | 'ws'
  address: string
  port: number
}

export interface Listeners {
  info: ListenerInfo[]
  /** Stops accepting connections; existing ones stay until aedes closes them. */
  stopAccepting(): Promise<void>
  close(): Promise<void>
}

export interface ListenerOptions {
  host: string
  mqttPort: number
  wsEnabled: boolean
  wsPort: number
  wsPath: string
}

async function listen(server: TcpServer | HttpServer, port: number, host: string, what: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(mqfnError('MQFN_ERR_LISTEN', `${what} on ${host}:${port}`, errorMessage(err))))
    server.listen(port, host, () => resolve())
  })
  return (server.address() as AddressInfo).port
}

function closeServer(server: TcpServer | HttpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

export async function openListeners(aedes: Aedes, opts: ListenerOptions): Promise<Listeners> {
  const tcp = createTcpServer(aedes.handle)
  const info: ListenerInfo[] = [
    { protocol: 'mqtt', address: opts.host, port: await listen(tcp, opts.mqttPort, opts.host, 'MQTT (mqttPort)') },
  ]
  let http: HttpServer | undefined
  let wss: WebSocketServer | undefined
  if (opts.wsEnabled) {
    http = createHttpServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end(`MQTT over WebSocket is served at ${opts.wsPath}\n`)
    })
    // MQTT over WebSocket uses binary frames and the "mqtt" subprotocol [MQTT-6.0.0-3/4]
    wss = new WebSocketServer({
      server: http,
      path: opts.wsPath,
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    })
    wss.on('connection', (socket, req) => {
      const stream = createWebSocketStream(socket)
      // the stream has no remoteAddress of its own; aedes and our events read it here
      Object.defineProperty(stream, 'remoteAddress', { value: req.socket.remoteAddress })
      stream.on('error', () => stream.destroy())
      aedes.handle(stream, req)
    })
    info.push({ protocol: 'ws', address: opts.host, port: await listen(http, opts.wsPort, opts.host, 'WebSocket (wsPort)') })
  }
  let stopped: Promise<void> | undefined
  const stopAccepting = () => {
    stopped ??= Promise.all([
      closeServer(tcp),
      ...(http ? [closeServer(http)] : []),
    ]).then(() => undefined)
    // server.close waits for open connections; aedes closes them, so do not await here
    return Promise.resolve()
  }
  return {
    info,
    stopAccepting,
    async close() {
      await stopAccepting()
      wss?.close()
      http?.closeAllConnections()
      await stopped
    },
  }
}

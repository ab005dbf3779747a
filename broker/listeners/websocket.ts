import type { IncomingMessage, RequestListener, Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import type { ConnectionHandler } from '../hooks/hooks.ts'
import { WebSocketServer, createWebSocketStream } from 'ws'

/** Answers plain HTTP requests on a WebSocket listener: 426, and where MQTT is served. */
export function upgradeRequired(path: string): RequestListener {
  return (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end(`MQTT over WebSocket is served at ${path}\n`)
  }
}

/**
 * Serves MQTT over WebSocket at `path` of an HTTP or HTTPS server. `prepare` sees
 * each stream before aedes does, to record what the authenticator needs on it.
 */
export function serveMqttOverWebSocket(
  server: HttpServer | HttpsServer,
  path: string,
  maxPacketSize: number,
  handle: ConnectionHandler,
  prepare?: (stream: Duplex, req: IncomingMessage) => void,
): WebSocketServer {
  // MQTT over WebSocket uses binary frames and the "mqtt" subprotocol [MQTT-6.0.0-3/4]
  const wss = new WebSocketServer({
    server,
    path,
    // ws buffers a whole frame before we see a byte of it (its default cap is 100 MiB);
    // a frame larger than the largest packet plus its fixed header closes with 1009
    maxPayload: maxPacketSize + 5,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
  })
  wss.on('connection', (socket, req) => {
    const stream = createWebSocketStream(socket)
    // the stream has no remoteAddress of its own; aedes and our events read it here
    Object.defineProperty(stream, 'remoteAddress', { value: req.socket.remoteAddress })
    stream.on('error', () => stream.destroy())
    prepare?.(stream, req)
    handle(stream, req)
  })
  return wss
}

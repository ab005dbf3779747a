import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createTcpServer, type Server } from 'node:net'
import type { ConnectionHandler } from './hooks/hooks.ts'
import type { WebSocketServer } from 'ws'
import type { Logger } from '../common/logger.ts'
import type { BrokerConfig } from './config.ts'
import { closeServer, listen } from './listeners/net.ts'
import { openTlsListeners, type TlsSetup } from './listeners/tls.ts'
import { serveMqttOverWebSocket, upgradeRequired } from './listeners/websocket.ts'

export { loadTls, type TlsSetup } from './listeners/tls.ts'

export interface ListenerInfo {
  protocol: 'mqtt' | 'ws' | 'mqtts' | 'wss'
  address: string
  port: number
}

export interface Listeners {
  info: ListenerInfo[]
  /** Stops accepting connections; existing ones stay until aedes closes them. */
  stopAccepting(): Promise<void>
  close(): Promise<void>
}

export type ListenerOptions = Pick<
  BrokerConfig,
  'host' | 'mqttPort' | 'wsEnabled' | 'wsPort' | 'wsPath' | 'tlsPort' | 'wssEnabled' | 'wssPort' | 'tlsClientCerts' | 'maxPacketSize'
>

/**
 * Opens MQTT over TCP, WebSocket, and, when `tls` is given (see loadTls), MQTT over
 * TLS and secure WebSocket. A listener that cannot bind closes the ones already open.
 */
export async function openListeners(handle: ConnectionHandler, opts: ListenerOptions, log: Logger, tls?: TlsSetup): Promise<Listeners> {
  const servers: Server[] = []
  const webSocketServers: WebSocketServer[] = []
  const info: ListenerInfo[] = []
  let unwatchTls = () => {}
  try {
    const tcp = createTcpServer((socket) => handle(socket))
    servers.push(tcp)
    info.push({ protocol: 'mqtt', address: opts.host, port: await listen(tcp, opts.mqttPort, opts.host, 'MQTT (mqttPort)') })
    if (opts.wsEnabled) {
      const http = createHttpServer(upgradeRequired(opts.wsPath))
      servers.push(http)
      webSocketServers.push(serveMqttOverWebSocket(http, opts.wsPath, opts.maxPacketSize, handle))
      info.push({ protocol: 'ws', address: opts.host, port: await listen(http, opts.wsPort, opts.host, 'WebSocket (wsPort)') })
    }
    if (tls) {
      const secure = await openTlsListeners(handle, opts, tls, log, (server) => servers.push(server))
      if (secure.wss) webSocketServers.push(secure.wss)
      info.push(...secure.info)
      unwatchTls = secure.unwatch
    }
  } catch (err) {
    for (const server of servers) if (server.listening) server.close()
    throw err
  }

  let stopped: Promise<void> | undefined
  const stopAccepting = () => {
    unwatchTls()
    stopped ??= Promise.all(servers.map(closeServer)).then(() => undefined)
    // server.close waits for open connections; aedes closes them, so do not await here
    return Promise.resolve()
  }
  return {
    info,
    stopAccepting,
    async close() {
      await stopAccepting()
      for (const wss of webSocketServers) wss.close()
      // idle keep-alive HTTP connections would hold server.close open
      for (const server of servers) if ('closeAllConnections' in server) (server as HttpServer).closeAllConnections()
      await stopped
    },
  }
}

import { unwatchFile, watchFile } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import type { Server } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls'
import type { ConnectionHandler } from '../hooks/hooks.ts'
import type { WebSocketServer } from 'ws'
import { errorMessage } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { BrokerConfig } from '../config.ts'
import { setPeerCertificate } from '../security/peer.ts'
import { listen } from './net.ts'
import { readTlsMaterial, tlsFilesOf, type TlsFiles, type TlsMaterial, type TlsSettings } from './tls-files.ts'
import { serveMqttOverWebSocket, upgradeRequired } from './websocket.ts'

/** TLS settings checked and files read, before anything else starts. */
export interface TlsSetup {
  files: TlsFiles
  material: TlsMaterial
}

export type TlsListenerOptions = Pick<BrokerConfig, 'host' | 'tlsPort' | 'wssEnabled' | 'wssPort' | 'wsPath' | 'tlsClientCerts' | 'maxPacketSize'>

/** Undefined when TLS is not configured; throws MQFN_ERR_TLS_CONFIG / MQFN_ERR_TLS_FILE. */
export function loadTls(settings: TlsSettings): TlsSetup | undefined {
  const files = tlsFilesOf(settings)
  return files ? { files, material: readTlsMaterial(files) } : undefined
}

/** A TLS handshake must finish within this; Node's default (120 s) lets idle sockets pile up. */
const HANDSHAKE_TIMEOUT_MS = 10_000
/** How often the certificate files are checked for a change. */
const WATCH_INTERVAL_MS = 1000
/** Renewals write the key and the certificate one after the other: wait for both. */
const RELOAD_SETTLE_MS = 300

function secureContextOptions(material: TlsMaterial): TlsOptions {
  return {
    cert: material.cert,
    key: material.key,
    ...(material.ca !== undefined ? { ca: material.ca } : {}),
    minVersion: 'TLSv1.2',
  }
}

function serverOptions(material: TlsMaterial, clientCerts: TlsListenerOptions['tlsClientCerts']): TlsOptions {
  return {
    ...secureContextOptions(material),
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    requestCert: clientCerts !== 'off',
    // `optional`: the handshake succeeds without a valid certificate, and the authenticator sees `verified`
    rejectUnauthorized: clientCerts === 'required',
  }
}

/** Records the client certificate on `conn`, the object aedes sees as client.conn. */
function recordPeerCertificate(conn: object, socket: TLSSocket, log: Logger): void {
  const cert = socket.getPeerCertificate()
  if (!cert || Object.keys(cert).length === 0) return
  // a subject with several CNs arrives as an array: no single name to log in with
  const cn: unknown = cert.subject?.CN
  const name = typeof cn === 'string' ? cn : ''
  const verified = socket.authorized && name !== ''
  if (!socket.authorized) log.debug({ remoteAddress: socket.remoteAddress, cn: name, reason: String(socket.authorizationError) }, 'client certificate not verified')
  setPeerCertificate(conn, { cn: name, verified })
}

export interface TlsListeners {
  info: { protocol: 'mqtts' | 'wss'; address: string; port: number }[]
  wss?: WebSocketServer | undefined
  /** Stops watching the certificate files. */
  unwatch(): void
}

/**
 * Opens MQTT over TLS and (with wssEnabled) MQTT over secure WebSocket. `opened`
 * receives each server as soon as it exists, so a later failure can close it.
 */
export async function openTlsListeners(handle: ConnectionHandler, opts: TlsListenerOptions, setup: TlsSetup, log: Logger, opened: (server: Server) => void): Promise<TlsListeners> {
  const options = serverOptions(setup.material, opts.tlsClientCerts)
  const onHandshakeError = (err: Error, socket: TLSSocket) => log.debug({ remoteAddress: socket.remoteAddress, err: err.message }, 'TLS handshake failed')

  const tls = createTlsServer(options, (socket) => {
    recordPeerCertificate(socket, socket, log)
    handle(socket)
  })
  tls.on('tlsClientError', onHandshakeError)
  opened(tls)
  const servers: TlsServer[] = [tls]
  const info: TlsListeners['info'] = [{ protocol: 'mqtts', address: opts.host, port: await listen(tls, opts.tlsPort, opts.host, 'MQTT over TLS (tlsPort)') }]

  let wss: WebSocketServer | undefined
  if (opts.wssEnabled) {
    const https = createHttpsServer(options, upgradeRequired(opts.wsPath))
    https.on('tlsClientError', onHandshakeError)
    opened(https)
    servers.push(https)
    wss = serveMqttOverWebSocket(https, opts.wsPath, opts.maxPacketSize, handle, (stream, req) => recordPeerCertificate(stream, req.socket as TLSSocket, log))
    info.push({ protocol: 'wss', address: opts.host, port: await listen(https, opts.wssPort, opts.host, 'MQTT over secure WebSocket (wssPort)') })
  }

  const { material } = setup
  log.info({ subject: material.subject, serialNumber: material.serialNumber, validTo: material.validTo, clientCerts: opts.tlsClientCerts }, 'TLS certificate loaded')
  const unwatch = watchTlsFiles(setup.files, log, (next) => {
    const context = secureContextOptions(next)
    for (const server of servers) server.setSecureContext(context)
  })
  return { info, wss, unwatch }
}

/**
 * Re-reads the files when one changes (a renewal by cert-manager or certbot) and
 * hands valid material to `apply`; new connections get it, open ones keep theirs.
 * Polling the stat, not fs.watch, also sees rename-over writes and Kubernetes'
 * symlink swaps of mounted Secrets. A bad new file is logged; the old context stays.
 */
function watchTlsFiles(files: TlsFiles, log: Logger, apply: (material: TlsMaterial) => void): () => void {
  const paths = [...new Set([files.cert, files.key, ...(files.ca !== undefined ? [files.ca] : [])])]
  let timer: NodeJS.Timeout | undefined
  const reload = () => {
    timer = undefined
    try {
      const material = readTlsMaterial(files)
      apply(material)
      log.info({ subject: material.subject, serialNumber: material.serialNumber, validTo: material.validTo }, 'TLS certificate reloaded')
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'TLS files changed but cannot be used; keeping the previous certificate')
    }
  }
  const onChange = () => {
    clearTimeout(timer)
    timer = setTimeout(reload, RELOAD_SETTLE_MS)
    timer.unref()
  }
  for (const path of paths) watchFile(path, { interval: WATCH_INTERVAL_MS, persistent: false }, onChange)
  return () => {
    clearTimeout(timer)
    for (const path of paths) unwatchFile(path, onChange)
  }
}

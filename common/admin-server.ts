import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type NextFunction, type Request, type Response, type Router } from 'express'
import type { z } from 'zod'
import type { adminSettings } from './config.ts'
import { errorMessage, mqfnError } from './errors.ts'
import type { Logger } from './logger.ts'

/*
 * The admin HTTP server both processes run (broker: 9090, worker: 9091), an express 5
 * app (the worker's dashboard and bull-board's @bull-board/express mount on it).
 * /healthz and /readyz answer anyone and say nothing but a status, so a load balancer
 * or kubelet needs no secret. Everything else needs the admin token: as
 * `Authorization: Bearer`, or for the browser pages under /dashboard a cookie set from
 * a one-time `?token=`.
 */

/** Protected routes: an express router mounted at `prefix`, reached only with the token (or the dashboard cookie). */
export interface AdminRoute {
  prefix: string
  router: Router
}

interface AdminServerOptions {
  host: string
  /** 0 picks a free port; the bound one is `AdminServer.port` and in the log line. */
  port: number
  /** Without one, every protected path answers 401 saying to set MQFN_ADMIN_TOKEN. */
  token: string | undefined
  log: Logger
  /** Readiness: true when the process's dependencies are connected; or with the reasons it is not. */
  ready(): Readiness | Promise<Readiness>
  /** Prometheus exposition: content type and body. */
  metrics(): Promise<{ contentType: string; body: string }>
  /** Protected routes besides /metrics; under /dashboard they also take the cookie. */
  routes?: readonly AdminRoute[]
}

export interface AdminServer {
  /** The bound port (useful with port 0). */
  readonly port: number
  /** Safe to call twice. */
  close(): Promise<void>
}

const ADMIN_COOKIE = 'mqfn_admin'
const BROWSER_PREFIX = '/dashboard'
const NO_TOKEN = 'no admin token is configured: set MQFN_ADMIN_TOKEN (at least 16 characters) to use this endpoint\n'

// Hashing first makes both sides the same length, so the comparison leaks neither content nor length.
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

/** The cookie holds a value derived from the token, not the token: a leaked cookie does not open /metrics. */
function cookieValue(token: string): string {
  return createHmac('sha256', token).update('mqfn-admin-dashboard').digest('base64url')
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

function isBrowserPath(path: string): boolean {
  return path === BROWSER_PREFIX || path.startsWith(`${BROWSER_PREFIX}/`)
}

type Access = 'granted' | 'no-token' | 'denied' | { setCookie: string; location: string }

function checkAccess(req: IncomingMessage, url: URL, token: string | undefined): Access {
  if (!token) return 'no-token'
  const auth = req.headers.authorization
  if (auth?.startsWith('Bearer ')) return sameSecret(auth.slice(7).trim(), token) ? 'granted' : 'denied'
  if (!isBrowserPath(url.pathname)) return 'denied'
  const cookie = readCookie(req, ADMIN_COOKIE)
  if (cookie !== undefined && sameSecret(cookie, cookieValue(token))) return 'granted'
  const query = url.searchParams.get('token')
  if (query === null || !sameSecret(query, token) || req.method !== 'GET') return 'denied'
  // drop the token from the address bar and history once the cookie holds the session
  url.searchParams.delete('token')
  return {
    setCookie: `${ADMIN_COOKIE}=${cookieValue(token)}; Path=${BROWSER_PREFIX}; HttpOnly; SameSite=Strict`,
    location: `${url.pathname}${url.search}`,
  }
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
  res.end(body)
}

/** Ready or not; `reasons` (which file, which error) are shown only to a caller with the admin token. */
export type Readiness = boolean | { ok: boolean; reasons: readonly string[] }

function status(res: ServerResponse, ok: boolean, reasons?: readonly string[]): void {
  send(res, ok ? 200 : 503, JSON.stringify({ status: ok ? 'ok' : 'not ready', ...(reasons && reasons.length > 0 ? { reasons } : {}) }), 'application/json')
}

/** Lets a request through with the token (or the dashboard cookie); else 401, or the redirect that sets the cookie. */
function authorize(token: string | undefined) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const url = new URL(req.originalUrl, 'http://admin.invalid')
    const access = checkAccess(req, url, token)
    if (access === 'granted') return next()
    if (access === 'no-token') return send(res, 401, NO_TOKEN)
    if (access === 'denied') {
      res.setHeader('www-authenticate', 'Bearer realm="mqfn admin"')
      const how = isBrowserPath(url.pathname) ? `open ${BROWSER_PREFIX}?token=<MQFN_ADMIN_TOKEN>` : 'send Authorization: Bearer <MQFN_ADMIN_TOKEN>'
      return send(res, 401, `unauthorized: ${how}\n`)
    }
    res.writeHead(303, { 'set-cookie': access.setCookie, location: access.location, 'cache-control': 'no-store' })
    res.end()
  }
}

/** Starts the admin server and logs "admin server listening" with the bound port. */
async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  // paths match exactly, as a probe's or a script's would
  const app = express().disable('x-powered-by').set('case sensitive routing', true).set('strict routing', true)
  app.get('/healthz', (_req, res) => status(res, true))
  app.get('/readyz', async (req, res) => {
    let answer: Readiness = false
    try {
      answer = await opts.ready()
    } catch {
      answer = false
    }
    if (typeof answer === 'boolean') return status(res, answer)
    // a probe needs no secret and learns only the status; the reasons name files and errors
    const url = new URL(req.originalUrl, 'http://admin.invalid')
    status(res, answer.ok, checkAccess(req, url, opts.token) === 'granted' ? answer.reasons : undefined)
  })
  app.use(authorize(opts.token))
  app.get('/metrics', async (_req, res) => {
    const { contentType, body } = await opts.metrics()
    send(res, 200, body, contentType)
  })
  for (const route of opts.routes ?? []) app.use(route.prefix, route.router)
  app.use((_req: Request, res: Response) => send(res, 404, 'not found\n'))
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    // the request's fault, as express's body parsers say (a form too large: 413)
    const status = (err as { status?: unknown; expose?: unknown }).status
    if (typeof status === 'number' && status >= 400 && status < 500 && (err as { expose?: unknown }).expose === true) return send(res, status, `${errorMessage(err)}\n`)
    opts.log.error({ err, path: req.originalUrl }, 'admin request failed')
    if (!res.headersSent) send(res, 500, 'internal error\n')
    else res.end()
  })

  const server = createServer(app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(mqfnError('MQFN_ERR_LISTEN', `the admin server on ${opts.host}:${opts.port} (MQFN_ADMIN_PORT)`, errorMessage(err))))
    server.listen(opts.port, opts.host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  opts.log.info({ adminHost: opts.host, adminPort: port, token: opts.token ? 'set' : 'not set' }, 'admin server listening')
  let closing: Promise<void> | undefined
  return {
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        // bull-board's UI polls with keep-alive: idle sockets would hold close() open
        server.closeIdleConnections()
        setTimeout(() => server.closeAllConnections(), 1000).unref()
      })),
  }
}

/** The admin settings both processes' configs carry (common/config.ts adminSettings). */
export type AdminSettings = z.output<z.ZodObject<ReturnType<typeof adminSettings>>>

/** A Prometheus registry as prom-client's `Registry` exposes it. */
export interface MetricsRegistry {
  readonly contentType: string
  metrics(): Promise<string>
}

/** Starts the admin server a process's settings describe, with `registry` at /metrics; undefined when disabled. */
export async function startConfiguredAdmin(
  config: Readonly<AdminSettings>,
  log: Logger,
  ready: () => Readiness | Promise<Readiness>,
  registry: MetricsRegistry,
  routes?: readonly AdminRoute[],
): Promise<AdminServer | undefined> {
  if (!config.adminEnabled) return undefined
  return startAdminServer({
    host: config.adminHost,
    port: config.adminPort,
    token: config.adminToken,
    log,
    ready,
    metrics: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
    ...(routes ? { routes } : {}),
  })
}

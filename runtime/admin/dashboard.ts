import express, { type Request, type Response } from 'express'
import type { Db, Filter } from 'mongodb'
import type { AdminRoute } from '../../common/admin-server.ts'
import { EVENT_TYPES, isEventType } from '../../common/event-types.ts'
import { errorMessage, isMqfnError } from '../../common/errors.ts'
import { listDeadLetters, retryDeadLetters, type DeadLetterSummary, type EnqueueRetries } from '../redelivery/index.ts'
import { EVENTS_COLLECTION, type EventDocument } from '../store/event-log.ts'
import { PRESENCE_COLLECTION, type PresenceDocument } from '../store/presence.ts'
import { html, page, PAGE_HEADERS, raw, type Html } from './html.ts'
import { QUEUES_PATH } from './bull-board.ts'

/*
 * /dashboard: dead letters (with a Retry button that does what `mqfn dlq retry <id>`
 * does), who is online, and recent events filtered by client, topic and type. Plain
 * HTML forms, no scripts; the retry is a POST behind the admin token or its cookie.
 */

const DASHBOARD_PATH = '/dashboard'
const RETRY = '/dead-letters/retry'
const RETRY_PATH = `${DASHBOARD_PATH}${RETRY}`
const LIMIT = 50
const FORM_BYTES = 4096

/** The same defaults as `mqfn dlq retry`: one attempt, then 1 s backoff for any further ones. */
const RETRY_OPTIONS = { attempts: 1, backoffMs: 1000, dryRun: false }

export interface DashboardDeps {
  db: Db
  enqueue: EnqueueRetries
  /** Handler files that did not load (`code: message`), and the event types held back by them. */
  broken?: { files: readonly string[]; held: readonly string[] }
  /** Moves each online client's `lastSeen` forward to its latest event (kept in Redis, runtime/store/presence.ts). */
  lastSeen?: (docs: readonly PresenceDocument[]) => Promise<Map<string, Date>>
}

interface EventFilter {
  client: string
  topic: string
  type: string
}

function redirect(res: Response, location: string): void {
  res.writeHead(303, { location, 'cache-control': 'no-store' })
  res.end()
}

// SameSite=Strict already keeps other sites' forms from carrying the cookie; a browser
// that sends Origin must also name this server
function sameOrigin(req: Request): boolean {
  const origin = req.headers.origin
  if (origin === undefined || origin === 'null') return origin === undefined
  try {
    return new URL(origin).host === req.headers.host
  } catch {
    return false
  }
}

function deadLetterRows(letters: DeadLetterSummary[]): Html {
  if (letters.length === 0) return html`<p class="muted">No dead letters.</p>`
  const rows = letters.map((d) => html`<tr data-dead-letter="${d.id}">
<td><code>${d.id}</code></td><td>${d.type}</td><td>${d.handler ?? '(validation)'}</td><td>${d.deadAt}</td><td>${d.attempts}</td>
<td class="err">${d.lastError ? `${d.lastError.name}: ${d.lastError.message}` : ''}</td>
<td>${d.handler === null
    ? html`<span class="muted">purge it: mqfn dlq purge</span>`
    : html`<form class="inline" method="post" action="${RETRY_PATH}"><input type="hidden" name="id" value="${d.id}"><button type="submit">Retry</button></form>`}</td></tr>`)
  return html`<table><thead><tr><th>id</th><th>event</th><th>handler</th><th>dead at</th><th>attempts</th><th>last error</th><th></th></tr></thead><tbody>${rows}</tbody></table>`
}

function presenceRows(online: PresenceDocument[], seen: Map<string, Date> | undefined): Html {
  if (online.length === 0) return html`<p class="muted">Nobody is online.</p>`
  const rows = online.map((p) => html`<tr><td>${p._id}</td><td>${p.since}</td><td>${p.brokerId}</td><td>${p.remoteAddress}</td><td>${p.username}</td><td>${seen?.get(p._id) ?? p.lastSeen}</td></tr>`)
  return html`<table><thead><tr><th>client</th><th>since</th><th>broker</th><th>address</th><th>username</th><th>last seen</th></tr></thead><tbody>${rows}</tbody></table>`
}

function preview(doc: EventDocument): string {
  const payload = (doc as { payload?: { buffer: Uint8Array } }).payload
  if (!payload) return ''
  const text = Buffer.from(payload.buffer).toString('utf8')
  return text.length > 80 ? `${text.slice(0, 80)}…` : text
}

function eventRows(events: EventDocument[]): Html {
  if (events.length === 0) return html`<p class="muted">No events match.</p>`
  const rows = events.map((e) => {
    const d = e as EventDocument & { clientId?: string | null; topic?: string; reason?: string; error?: { message?: string; code?: string } }
    // clientError / connectionError (and some disconnects) say what went wrong only here
    const error = d.error?.message ? `${d.error.code ? `${d.error.code}: ` : ''}${d.error.message}` : undefined
    return html`<tr><td>${e.ts}</td><td>${e.type}</td><td>${d.clientId}</td><td>${d.topic}</td><td>${d.reason}</td><td class="error">${error}</td><td><code>${preview(e)}</code></td><td><code>${e._id}</code></td></tr>`
  })
  return html`<table><thead><tr><th>time</th><th>type</th><th>client</th><th>topic</th><th>reason</th><th>error</th><th>payload</th><th>id</th></tr></thead><tbody>${rows}</tbody></table>`
}

function filterForm(f: EventFilter): Html {
  const options = ['', ...EVENT_TYPES].map((t) => html`<option value="${t}"${raw(t === f.type ? ' selected' : '')}>${t || 'any type'}</option>`)
  return html`<form method="get" action="${DASHBOARD_PATH}">
<label>client <input name="client" value="${f.client}"></label>
<label>topic <input name="topic" value="${f.topic}"></label>
<label>type <select name="type">${options}</select></label>
<button type="submit">Filter</button> <a href="${DASHBOARD_PATH}">clear</a></form>`
}

function brokenFiles(broken: DashboardDeps['broken']): Html {
  if (!broken || broken.files.length === 0) return html``
  return html`<h2 id="handler-files">Handler files that did not load (${broken.files.length})</h2>
<p class="notice err">Not consumed until they load: ${broken.held.join(', ') || 'none'}. Their events wait in Redis.</p>
<ul>${broken.files.map((f) => html`<li><code>${f}</code></li>`)}</ul>`
}

async function render(deps: DashboardDeps, url: URL): Promise<string> {
  const f: EventFilter = { client: url.searchParams.get('client') ?? '', topic: url.searchParams.get('topic') ?? '', type: url.searchParams.get('type') ?? '' }
  const notices: Html[] = []
  const retried = url.searchParams.get('retried')
  if (retried) notices.push(html`<p class="notice">Retry enqueued for <code>${retried}</code>: it leaves this list once its handler succeeds, or comes back with the new error.</p>`)
  const failed = url.searchParams.get('error')
  if (failed) notices.push(html`<p class="notice err">${failed}</p>`)
  const query: Filter<EventDocument> = {}
  if (f.client) (query as Record<string, unknown>).clientId = f.client
  if (f.topic) (query as Record<string, unknown>).topic = f.topic
  if (f.type && isEventType(f.type)) query.type = f.type
  else if (f.type) notices.push(html`<p class="notice err">Unknown event type ${f.type}; valid: ${EVENT_TYPES.join(', ')}</p>`)

  const [dead, online, events] = await Promise.all([
    listDeadLetters(deps.db, {}, LIMIT),
    deps.db.collection<PresenceDocument>(PRESENCE_COLLECTION).find({ online: true }).sort({ since: -1 }).limit(LIMIT * 4).toArray(),
    deps.db.collection<EventDocument>(EVENTS_COLLECTION).find(query).sort({ ts: -1, _id: -1 }).limit(LIMIT).toArray(),
  ])
  return page('mqtt-functions dashboard', html`<h1>mqtt-functions</h1>
<nav><a href="${DASHBOARD_PATH}">Dashboard</a><a href="${QUEUES_PATH}">Queues (bull-board)</a></nav>
${notices}
${brokenFiles(deps.broken)}
<h2 id="dead-letters">Dead letters (${dead.total}${dead.total > dead.letters.length ? `, newest ${dead.letters.length} shown` : ''})</h2>
${deadLetterRows(dead.letters)}
<h2 id="presence">Online now (${online.length})</h2>
${presenceRows(online, await deps.lastSeen?.(online).catch(() => undefined))}
<h2 id="events">Recent events</h2>
${filterForm(f)}
${eventRows(events)}`)
}

async function retry(deps: DashboardDeps, req: Request, res: Response): Promise<void> {
  if (!sameOrigin(req)) {
    res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' })
    res.end('forbidden: the request came from another origin\n')
    return
  }
  const id = (req.body as Record<string, unknown> | undefined)?.id
  if (Array.isArray(id)) return redirect(res, `${DASHBOARD_PATH}?error=${encodeURIComponent('one dead letter id at a time')}`)
  if (typeof id !== 'string' || !id) return redirect(res, `${DASHBOARD_PATH}?error=${encodeURIComponent('no dead letter id in the form')}`)
  try {
    const report = await retryDeadLetters(deps.db, deps.enqueue, { ids: [id] }, RETRY_OPTIONS)
    const skipped = report.skipped[0]
    if (skipped) return redirect(res, `${DASHBOARD_PATH}?error=${encodeURIComponent(`${id}: ${skipped.reason}`)}`)
    redirect(res, `${DASHBOARD_PATH}?retried=${encodeURIComponent(id)}`)
  } catch (err) {
    if (!isMqfnError(err, 'MQFN_ERR_DLQ_NOT_FOUND')) throw err
    redirect(res, `${DASHBOARD_PATH}?error=${encodeURIComponent(errorMessage(err))}`)
  }
}

export function dashboardRoute(deps: DashboardDeps): AdminRoute {
  const router = express.Router({ caseSensitive: true, strict: true })
  router.get('/', async (req, res) => {
    const body = await render(deps, new URL(req.originalUrl, 'http://admin.invalid'))
    res.writeHead(200, PAGE_HEADERS)
    res.end(body)
  })
  // a form of one id: anything larger is refused (413) before it is read whole
  router.post(RETRY, express.urlencoded({ extended: false, limit: FORM_BYTES }), (req, res) => retry(deps, req, res))
  return { prefix: DASHBOARD_PATH, router }
}

/*
 * Server-rendered HTML without a framework. Every value that did not come from this
 * file goes through `esc` (client ids, topics and error messages are attacker-chosen),
 * and the page is served with a CSP that forbids scripts.
 */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

function esc(value: unknown): string {
  const text = value instanceof Date ? value.toISOString() : value === undefined || value === null ? '' : String(value)
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] as string)
}

/** A tagged template whose interpolations are escaped unless wrapped in `raw`. */
export interface Html {
  readonly html: string
}

export function raw(html: string): Html {
  return { html }
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] ?? ''
  values.forEach((v, i) => {
    const parts = Array.isArray(v) ? v : [v]
    for (const p of parts) out += typeof p === 'object' && p !== null && 'html' in p ? (p as Html).html : esc(p)
    out += strings[i + 1] ?? ''
  })
  return { html: out }
}

export const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
}

const STYLE = `body{font:14px system-ui,sans-serif;margin:1.5rem;color:#222}h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
td.err{color:#a00;max-width:40rem;word-break:break-word}.notice{background:#efe;padding:.5rem;border:1px solid #9c9}
.muted{color:#777}form.inline{display:inline}nav a{margin-right:1rem}code{font-size:12px}`

export function page(title: string, body: Html): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${STYLE}</style></head><body>${body.html}</body></html>`
}

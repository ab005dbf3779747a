import { z } from 'zod'
import { mqfnError } from '../../common/errors.ts'
import { topicMatches, validateTopicFilter } from '../../common/topic.ts'

/*
 * ACL rules, JSON or YAML:
 *   rules:
 *     - allow: [publish, subscribe]
 *       topic: devices/%u/#
 *     - deny: subscribe
 *       topic: admin/#
 *       username: guest          # optional: the rule applies to this user only
 * The first rule whose action, topic and selectors match decides; when rules
 * exist and none matches, the answer is deny. `%u` and `%c` stand for the
 * username and client id, filled in by one scan of the pattern (expand); a rule
 * using them never matches a client whose name contains `+`, `#` or `/`, which
 * would otherwise widen the pattern.
 */

export type Action = 'publish' | 'subscribe'

export interface TopicGrants {
  publish: readonly string[]
  subscribe: readonly string[]
}

export interface Principal {
  clientId: string
  username?: string | undefined
}

const actions = z.union([z.enum(['publish', 'subscribe', 'all']), z.array(z.enum(['publish', 'subscribe'])).min(1)])
const topicPattern = z.string().superRefine((topic, ctx) => {
  const problem = validateTopicFilter(topic)
  if (problem) ctx.addIssue({ code: 'custom', message: problem })
})

const RuleSchema = z
  .object({
    allow: actions.optional(),
    deny: actions.optional(),
    topic: topicPattern,
    username: z.string().min(1).optional(),
    clientId: z.string().min(1).optional(),
  })
  .strict()
  .refine((r) => (r.allow === undefined) !== (r.deny === undefined), 'a rule has exactly one of "allow" or "deny"')

const AclFileSchema = z.object({ rules: z.array(RuleSchema).default([]) }).strict()

interface Rule {
  allow: boolean
  actions: ReadonlySet<Action>
  topic: string
  username?: string | undefined
  clientId?: string | undefined
}

export interface Acl {
  readonly rules: readonly Rule[]
}

function toActions(value: z.output<typeof actions>): Set<Action> {
  if (value === 'all') return new Set(['publish', 'subscribe'])
  return new Set(typeof value === 'string' ? [value] : value)
}

export function parseAcl(raw: unknown, path: string): Acl {
  const result = AclFileSchema.safeParse(raw ?? {})
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(file)'}: ${i.message}`).join('; ')
    throw mqfnError('MQFN_ERR_ACL_FILE', path, problems)
  }
  return {
    rules: result.data.rules.map((r) => ({
      allow: r.allow !== undefined,
      actions: toActions((r.allow ?? r.deny) as z.output<typeof actions>),
      topic: r.topic,
      username: r.username,
      clientId: r.clientId,
    })),
  }
}

const UNSAFE_IN_PATTERN = /[+#/]/
const PLACEHOLDER = /%[uc]/g

/**
 * The pattern with `%u` / `%c` filled in, or null when a name would widen it. One
 * scan of the pattern: a substituted name is never scanned again, so a user named
 * `%c` stands for the text `%c`, not for the client id.
 */
function expand(pattern: string, who: Principal): string | null {
  if (!pattern.includes('%')) return pattern
  let widens = false
  const expanded = pattern.replace(PLACEHOLDER, (placeholder) => {
    const name = placeholder === '%u' ? who.username : who.clientId
    if (!name || UNSAFE_IN_PATTERN.test(name)) widens = true
    return name ?? ''
  })
  return widens ? null : expanded
}

/**
 * Does `pattern` name every topic `filter` can match? `devices/a/#` covers
 * `devices/a/+` but not `devices/#`. An allow rule grants a subscription it covers;
 * a deny rule refuses only one it covers: a filter that merely overlaps a deny rule
 * (`#` against `admin/secret`) goes on to the next rule, and when granted the denied
 * topics are withheld at delivery by the forwarding check (as Mosquitto does).
 */
function filterCovers(pattern: string, filter: string): boolean {
  if (filter.startsWith('$') && startsWithWildcard(pattern)) return false
  const p = pattern.split('/')
  const f = filter.split('/')
  for (let i = 0; i < p.length; i++) {
    const pl = p[i] as string
    if (pl === '#') return true
    if (i >= f.length) return false
    const fl = f[i] as string
    if (fl === '#') return false
    if (pl === '+') continue
    if (fl === '+' || fl !== pl) return false
  }
  return p.length === f.length
}

function startsWithWildcard(filter: string): boolean {
  return filter.startsWith('+') || filter.startsWith('#')
}

function ruleMatches(rule: Rule, action: Action, topic: string, who: Principal, isFilter: boolean): boolean {
  if (!rule.actions.has(action)) return false
  if (rule.username !== undefined && rule.username !== who.username) return false
  if (rule.clientId !== undefined && rule.clientId !== who.clientId) return false
  const pattern = expand(rule.topic, who)
  if (pattern === null) return false
  return isFilter ? filterCovers(pattern, topic) : topicMatches(pattern, topic)
}

/**
 * The ACL's answer for a publish to `topic` or a subscription to the filter `topic`;
 * with no rules everything is allowed (the other checks still apply).
 */
export function aclAllows(acl: Acl, action: Action, topic: string, who: Principal, isFilter = action === 'subscribe'): boolean {
  if (acl.rules.length === 0) return true
  for (const rule of acl.rules) {
    if (ruleMatches(rule, action, topic, who, isFilter)) return rule.allow
  }
  return false
}

/**
 * Like aclAllows, but only a rule naming the user (`username:`) can allow: for `$SYS/`,
 * which lists every client id and subscription, closed to everyone else when
 * authentication is on. Deny rules apply as usual; no rules at all means no.
 */
export function aclAllowsNamed(acl: Acl, action: Action, topic: string, who: Principal, isFilter = action === 'subscribe'): boolean {
  for (const rule of acl.rules) {
    if (rule.allow && rule.username === undefined) continue
    if (ruleMatches(rule, action, topic, who, isFilter)) return rule.allow
  }
  return false
}

const SHARED = /^\$share\/[^/]*\//

/** Is `filter` (or the filter of a shared subscription `$share/<group>/<filter>`) under `$SYS`? */
export function isSysFilter(filter: string): boolean {
  const inner = filter.replace(SHARED, '')
  return inner === '$SYS' || inner.startsWith('$SYS/')
}

/** A token's own topic list: the topic (or filter) must fall inside one of them. */
export function grantsAllow(grants: TopicGrants, action: Action, topic: string, who: Principal, isFilter = action === 'subscribe'): boolean {
  const patterns = action === 'publish' ? grants.publish : grants.subscribe
  return patterns.some((raw) => {
    const pattern = expand(raw, who)
    if (pattern === null) return false
    return isFilter ? filterCovers(pattern, topic) : topicMatches(pattern, topic)
  })
}

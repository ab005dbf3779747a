import type { AedesOptions } from 'aedes'
import type { Pipeline } from './pipeline.ts'

/**
 * Security alone: each delivery is re-checked against the ACL, so a reloaded ACL or
 * a filter that merely overlaps a deny rule withholds the denied topics. Absent when
 * there are no rules or token grants, so aedes skips the call per delivery.
 */
export function authorizeForwardHook(p: Pipeline): AedesOptions['authorizeForward'] {
  const forward = p.security.authorizeForward
  if (!forward) return undefined
  return (client, packet) => (forward(client, packet.topic) ? packet : null)
}

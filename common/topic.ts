/*
 * MQTT topic filters [MQTT-4.7]. `+` matches one level, `#` the rest (including the
 * parent level), and a filter starting with a wildcard never matches a topic starting
 * with `$` [MQTT-4.7.2-1], so `#` handlers never see `$SYS/...`.
 */

export function validateTopicFilter(filter: string): string | null {
  if (filter.length === 0) return 'a topic filter must not be empty [MQTT-4.7.3-1]'
  if (filter.includes('\u0000')) return 'a topic filter must not contain U+0000 [MQTT-4.7.3-2]'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return `"#" must be a whole level and the last one [MQTT-4.7.1-2] in "${filter}"`
    }
    if (level.includes('+') && level !== '+') {
      return `"+" must occupy a whole level [MQTT-4.7.1-3] in "${filter}"`
    }
  }
  return null
}

export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

/** A compiled set of filters; `null` filters mean "every topic". */
export function createTopicMatcher(filters: readonly string[] | null): (topic: string) => boolean {
  if (filters === null || filters.length === 0) return () => true
  return (topic) => filters.some((f) => topicMatches(f, topic))
}

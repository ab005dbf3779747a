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
  return levelsMatch(filter.split('/'), topic)
}

/**
 * A filter's levels against a topic, walked in place: no split of the topic. The
 * worker matches every event's topic against each handler's filters, and two
 * splits per match were a measurable share of its CPU per event (docs/performance.md).
 */
function levelsMatch(levels: readonly string[], topic: string): boolean {
  const first = levels[0]
  if ((first === '+' || first === '#') && topic.startsWith('$')) return false
  let start = 0
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level === '#') return true
    // past the topic's last level: the filter has more
    if (start > topic.length) return false
    let end = topic.indexOf('/', start)
    if (end === -1) end = topic.length
    if (level !== '+' && (end - start !== level.length || !topic.startsWith(level, start))) return false
    start = end + 1
  }
  // every level of the topic used up
  return start > topic.length
}

/** A compiled set of filters; `null` filters mean "every topic". */
export function createTopicMatcher(filters: readonly string[] | null): (topic: string) => boolean {
  if (filters === null || filters.length === 0) return () => true
  const compiled = filters.map((f) => f.split('/'))
  return (topic) => compiled.some((levels) => levelsMatch(levels, topic))
}

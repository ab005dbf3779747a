import { mqfnError, type MqfnError } from '../../common/errors.ts'

export interface TopicLimitSettings {
  maxTopicLength: number
  maxTopicLevels: number
}

/** Why `topic` (a topic or a filter) is over maxTopicLength / maxTopicLevels, or null. */
export function topicOverLimit(topic: string, limits: TopicLimitSettings): MqfnError | null {
  // one byte per UTF-16 unit at least: skip the byte count for the common short topic
  if (topic.length * 3 > limits.maxTopicLength) {
    const bytes = Buffer.byteLength(topic)
    if (bytes > limits.maxTopicLength) {
      return mqfnError('MQFN_ERR_LIMIT_EXCEEDED', 'maxTopicLength', `a topic of ${bytes} bytes; the limit is ${limits.maxTopicLength} (MQFN_MAX_TOPIC_LENGTH)`)
    }
  }
  let levels = 1
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++
  if (levels > limits.maxTopicLevels) {
    return mqfnError('MQFN_ERR_LIMIT_EXCEEDED', 'maxTopicLevels', `a topic of ${levels} levels; the limit is ${limits.maxTopicLevels} (MQFN_MAX_TOPIC_LEVELS)`)
  }
  return null
}

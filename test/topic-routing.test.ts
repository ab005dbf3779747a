import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createTopicMatcher, topicMatches, validateTopicFilter } from '../common/topic.ts'
import { connect, recorder, sleep, startStack, waitFor } from './helpers/stack.ts'

test('topic filters follow MQTT 4.7', () => {
  const yes: [string, string][] = [
    ['a/b', 'a/b'], ['a/+', 'a/b'], ['+/b', 'a/b'], ['a/#', 'a'], ['a/#', 'a/b/c'], ['#', 'a/b'], ['+/+', '/x'],
    ['a/+/c', 'a//c'], ['$SYS/#', '$SYS/x'], ['$SYS/+/y', '$SYS/x/y'],
  ]
  const no: [string, string][] = [
    ['a/b', 'a/c'], ['a/+', 'a/b/c'], ['a/+', 'a'], ['+', 'a/b'], ['a/b/#', 'a'],
    ['#', '$SYS/x'], ['+/x', '$SYS/x'], ['+', '$x'], ['A', 'a'],
  ]
  for (const [f, topic] of yes) assert.equal(topicMatches(f, topic), true, `${f} matches ${topic}`)
  for (const [f, topic] of no) assert.equal(topicMatches(f, topic), false, `${f} does not match ${topic}`)
  assert.equal(createTopicMatcher(['x/#', 'y/+'])('y/1'), true)
  assert.equal(createTopicMatcher(null)('anything'), true)
  assert.equal(validateTopicFilter('a/#/b'), '"#" must be a whole level and the last one [MQTT-4.7.1-2] in "a/#/b"')
  assert.equal(validateTopicFilter('a/b+'), '"+" must occupy a whole level [MQTT-4.7.1-3] in "a/b+"')
  assert.equal(validateTopicFilter(''), 'a topic filter must not be empty [MQTT-4.7.3-1]')
  assert.equal(validateTopicFilter('a/+/#'), null)
})

test('published events go only to the handlers whose filter matches', async (t) => {
  const stack = await startStack(t, {
    functions: {
      'published/all.ts': recorder('published', "{ topic: '#' }"),
      'published/temps.ts': recorder('published', "{ topic: 'home/+/temp' }"),
      'published/home.ts': recorder('published', "{ topic: ['home/#', 'garden/shed'] }"),
      'published/unfiltered.ts': recorder('published'),
      'subscribed/alarms.ts': recorder('subscribed', "{ topic: 'alarms/#' }"),
    },
  })
  const client = await connect(stack.mqttPort, { clientId: 'router' })
  const topics = ['home/kitchen/temp', 'home/kitchen/humidity', 'home', 'garden/shed', 'garden/pond', 'office/x/temp']
  for (const topic of topics) await client.publishAsync(topic, 'v', { qos: 1 })
  await client.subscribeAsync('alarms/fire', { qos: 0 })
  await client.subscribeAsync('news/#', { qos: 0 })
  // refused by the broker: clients may not publish under $SYS
  client.publish('$SYS/forged', 'x', { qos: 1 })

  const expected: Record<string, string[]> = {
    'published/all': topics,
    'published/unfiltered': topics,
    'published/temps': ['home/kitchen/temp'],
    'published/home': ['home/kitchen/temp', 'home/kitchen/humidity', 'home', 'garden/shed'],
  }
  const calls = stack.db.collection<{ handler: string; event: { topic: string; subscriptions?: { topic: string }[] } }>('calls')
  await waitFor('all routed calls', async () => (await calls.countDocuments({ type: 'published' })) === 17 && (await calls.countDocuments({ type: 'subscribed' })) === 1)
  await sleep(500) // nothing more arrives
  for (const [handler, want] of Object.entries(expected)) {
    const got = (await calls.find({ handler }).toArray()).map((c) => c.event.topic).sort()
    assert.deepEqual(got, [...want].sort(), handler)
  }
  const subscribed = await calls.find({ handler: 'subscribed/alarms' }).toArray()
  assert.deepEqual(subscribed.map((c) => c.event.subscriptions?.map((s) => s.topic)), [['alarms/fire']])
  assert.equal(await calls.countDocuments({ 'event.topic': /^\$SYS/ }), 0)
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { aclAllows, parseAcl, type Principal } from '../broker/security/acl.ts'
import { connected, securityFiles, suback } from './helpers/auth.ts'
import { startStack, waitFor, sleep } from './helpers/stack.ts'

/*
 * `%u` and `%c` are filled in by one scan of the rule's pattern: a name that itself
 * reads `%c` or `%u` is text, never expanded again (issue 14 item 7). Names with
 * `+`, `#` or `/` would widen the pattern, so a rule using them never matches such a
 * client.
 */

const acl = parseAcl({
  rules: [
    { allow: 'all', topic: 'devices/%u/#' },
    { allow: 'publish', topic: 'clients/%c/status' },
    { allow: 'publish', topic: 'pairs/%u-%c' },
  ],
}, 'test')

const may = (who: Principal, action: 'publish' | 'subscribe', topic: string) => aclAllows(acl, action, topic, who)

test('a user named %c gets the literal tree devices/%c/#, never the tree of its client id', () => {
  const who = { username: '%c', clientId: 'alice' }
  assert.equal(may(who, 'subscribe', 'devices/alice/#'), false)
  assert.equal(may(who, 'publish', 'devices/alice/cmd'), false)
  assert.equal(may(who, 'subscribe', 'devices/%c/#'), true)
  assert.equal(may(who, 'publish', 'devices/%c/cmd'), true)
  assert.equal(may(who, 'publish', 'clients/alice/status'), true, 'its own %c rule still applies')
})

test('a client id named %u is its own text; names embedding placeholders stay literal', () => {
  assert.equal(may({ username: 'carol', clientId: '%u' }, 'publish', 'clients/carol/status'), false)
  assert.equal(may({ username: 'carol', clientId: '%u' }, 'publish', 'clients/%u/status'), true)
  assert.equal(may({ username: '%u', clientId: 'bob' }, 'publish', 'devices/%u/x'), true)
  assert.equal(may({ username: '%u', clientId: 'bob' }, 'publish', 'devices/bob/x'), false)
  assert.equal(may({ username: 'a%cb', clientId: 'zz' }, 'publish', 'devices/azzb/x'), false)
  assert.equal(may({ username: 'a%cb', clientId: 'zz' }, 'publish', 'devices/a%cb/x'), true)
  // both placeholders in one level, each name the other's placeholder
  assert.equal(may({ username: '%c', clientId: '%u' }, 'publish', 'pairs/%c-%u'), true)
  assert.equal(may({ username: '%c', clientId: '%u' }, 'publish', 'pairs/%u-%u'), false)
  assert.equal(may({ username: '%c', clientId: '%u' }, 'publish', 'pairs/%c-%c'), false)
})

test('names containing + or # or / never match a rule that uses them', () => {
  for (const name of ['+', '#', 'a/b', 'x+']) {
    assert.equal(may({ username: name, clientId: 'ok' }, 'subscribe', 'devices/#'), false, `user ${name}`)
    assert.equal(may({ username: name, clientId: 'ok' }, 'publish', 'devices/z/t'), false, `user ${name}`)
    assert.equal(may({ username: 'ok', clientId: name }, 'publish', 'clients/z/status'), false, `client id ${name}`)
  }
  assert.equal(may({ username: 'a/b', clientId: 'ok' }, 'publish', 'devices/a/b/t'), false, 'a / in a name would add a level')
})

test('against a broker: user "%c" connected as client "alice" cannot read or command Alice', async (t) => {
  const files = await securityFiles(t, ['alice', '%c', '%u', 'a%cb'], [
    '  - allow: all',
    '    topic: devices/%u/#',
    '  - allow: publish',
    '    topic: clients/%c/status',
  ])
  const stack = await startStack(t, { functions: {}, noWorker: true, broker: { auth: 'required', ...files } })
  const port = stack.mqttPort
  const alice = await connected(t, port, { clientId: 'alice-phone', username: 'alice', password: 'pw-1234' })
  await alice.publishAsync('devices/alice/secret', 'retained secret', { qos: 1, retain: true })

  const mallory = await connected(t, port, { clientId: 'alice', username: '%c', password: 'pw-1234' })
  const stolen: string[] = []
  mallory.on('message', (topic) => stolen.push(topic))
  assert.deepEqual(await suback(mallory, { 'devices/alice/#': { qos: 1 }, 'devices/%c/#': { qos: 1 } }), [128, 1])
  const aliceGot: string[] = []
  alice.on('message', (topic) => aliceGot.push(topic))
  await alice.subscribeAsync('devices/alice/cmd', { qos: 1 })
  await mallory.publishAsync('devices/alice/cmd', 'reboot', { qos: 1 })
  await alice.publishAsync('devices/alice/live', 'live', { qos: 1 })
  // its own literal tree works, which shows the connection is served
  await mallory.publishAsync('devices/%c/own', 'mine', { qos: 1 })
  await waitFor('its own message', () => stolen.includes('devices/%c/own'))
  await sleep(200)
  assert.deepEqual(stolen, ['devices/%c/own'])
  assert.deepEqual(aliceGot, [], 'the forged command never reached alice')

  const other = await connected(t, port, { clientId: 'zz', username: 'a%cb', password: 'pw-1234' })
  assert.deepEqual(await suback(other, { 'devices/azzb/#': { qos: 0 }, 'devices/a%cb/#': { qos: 0 } }), [128, 0])
  const percentU = await connected(t, port, { clientId: 'bob', username: '%u', password: 'pw-1234' })
  assert.deepEqual(await suback(percentU, { 'devices/alice/#': { qos: 0 }, 'devices/%u/#': { qos: 0 } }), [128, 0])
})

import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { promisify } from 'node:util'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { connack, connected, suback, tempDir } from './helpers/auth.ts'
import { BIN, mqfn, processStack, ready, type MqfnProcess, type ProcessStack } from './helpers/processes.ts'
import { waitFor } from './helpers/stack.ts'

const run = promisify(execFile)

/** `mqfn user ...` with the password on stdin. */
async function user(file: string, args: string[], stdin = ''): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [BIN, 'user', ...args, '--file', file], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  child.stdin.end(stdin)
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, out }
}

async function startPair(t: TestContext, env: NodeJS.ProcessEnv): Promise<{ stack: ProcessStack; broker: MqfnProcess }> {
  const stack = await processStack(t, {})
  const worker = mqfn(t, 'worker', stack.workerEnv())
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_AUTH: 'required', MQFN_LOG_LEVEL: 'trace', ...env }))
  await ready(broker, 'broker ready')
  await ready(worker, 'worker ready')
  return { stack, broker }
}

type Logged = { type: string; clientId: string | null; username?: string; reason?: string; returnCode?: number; error?: { message: string; code?: string }; topic?: string }

test('the default configuration refuses to start without a way to authenticate; auth none starts with a warning', async (t) => {
  const stack = await processStack(t, {})
  const strict = mqfn(t, 'broker', stack.brokerEnv({ MQFN_AUTH: '' }))
  assert.equal(await strict.exited(), 1, strict.output())
  assert.match(strict.output(), /MQFN_ERR_AUTH_NOT_CONFIGURED|auth is "required" but no way to authenticate is configured: set MQFN_USERS_FILE/)

  const open = mqfn(t, 'broker', stack.brokerEnv({ MQFN_AUTH: 'none' }))
  await ready(open, 'broker ready')
  assert.match(open.output(), /auth is \\"none\\": any client can connect without credentials/)
  assert.equal(await connack(stack.mqttPort, {}), 0)
  open.kill('SIGTERM')
  assert.equal(await open.exited(), 0, open.output())
})

test('users file: scrypt hashes written by mqfn user, right CONNACK codes, refusals recorded without the password, reloaded without restart', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'users.yaml')
  assert.deepEqual(await user(file, ['add', 'alice', '--password-stdin'], 'correct horse\n'), { code: 0, out: `added alice in ${file}\n` })
  const { stack, broker } = await startPair(t, { MQFN_USERS_FILE: file })
  const port = stack.mqttPort

  assert.equal(await connack(port, { username: 'alice', password: 'correct horse', clientId: 'ok-1' }), 0)
  assert.equal(await connack(port, { username: 'alice', password: 'wrong secret 1', clientId: 'bad-1' }), 4)
  assert.equal(await connack(port, { username: 'mallory', password: 'wrong secret 2', clientId: 'bad-2' }), 4)
  assert.equal(await connack(port, { clientId: 'anon-1' }), 5)
  // mosquitto_pub gives up with a non-zero exit on a refused CONNECT
  await assert.rejects(run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-i', 'bad-3', '-u', 'alice', '-P', 'wrong secret 3', '-t', 'x', '-m', 'y']))
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-i', 'ok-2', '-u', 'alice', '-P', 'correct horse', '-t', 'x', '-m', 'y', '-q', '1'])

  const events = stack.db.collection<Logged>('events')
  const refused = await waitFor('four refusals in the event log', async () => {
    const docs = await events.find({ type: 'connectionError' }).sort({ clientId: 1 }).toArray()
    return docs.length >= 4 ? docs : null
  }, 20_000, 250)
  assert.deepEqual(refused.map((e) => [e.clientId, e.reason, e.returnCode, e.error?.message]), [
    ['anon-1', 'not-authorized', 5, 'not authorized: no credentials given'],
    ['bad-1', 'not-authorized', 4, 'not authorized: bad username or password'],
    ['bad-2', 'not-authorized', 4, 'not authorized: bad username or password'],
    ['bad-3', 'not-authorized', 4, 'not authorized: bad username or password'],
  ])
  const all = JSON.stringify(await events.find({}).toArray())
  for (const secret of ['correct horse', 'wrong secret']) {
    assert.ok(!all.includes(secret), `"${secret}" appears in the event log`)
    assert.ok(!broker.output().includes(secret), `"${secret}" appears in the broker's trace log`)
  }

  // reload: bob added and alice removed while the broker runs
  assert.equal((await user(file, ['add', 'bob', '--password', 'hunter22'])).code, 0)
  assert.equal((await user(file, ['remove', 'alice'])).code, 0)
  assert.deepEqual(await user(file, ['list']), { code: 0, out: 'bob\n' })
  assert.deepEqual(await user(file, ['remove', 'alice']), { code: 1, out: `mqfn user remove: no user "alice" in ${file}\n` })
  // two edits, each seen by a poll of its own (1 s apart) when the CLI runs are slower than a poll
  await waitFor('bob let in', async () => (await connack(port, { username: 'bob', password: 'hunter22' })) === 0, 10_000, 300)
  await waitFor('alice refused', async () => (await connack(port, { username: 'alice', password: 'correct horse' })) === 4, 10_000, 300)
  assert.match(broker.output(), /users file reloaded/)

  // a broken edit keeps the last good version in force
  await writeFile(file, 'users:\n  bob:\n    password: plaintext\n')
  await waitFor('the bad users file reported', () => /users file is invalid; keeping the last version/.test(broker.output()), 10_000, 200)
  assert.match(broker.output(), /users\.bob\.password: expected scrypt\$N\$r\$p\$salt\$hash/)
  assert.equal(await connack(port, { username: 'bob', password: 'hunter22' }), 0)
})

test('failed logins are rate limited per IP address', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'users.json')
  assert.equal((await user(file, ['add', 'carol', '--password', 'right-one'])).code, 0)
  const { stack } = await startPair(t, { MQFN_USERS_FILE: file, MQFN_AUTH_FAILURE_LIMIT: '3', MQFN_AUTH_FAILURE_WINDOW_MS: '60000' })
  const port = stack.mqttPort
  for (let i = 0; i < 3; i++) assert.equal(await connack(port, { username: 'carol', password: `guess-${i}` }), 4)
  // the right password no longer helps from this address...
  assert.equal(await connack(port, { username: 'carol', password: 'right-one', clientId: 'blocked-1' }), 5)
  // ...but another address is unaffected
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-A', '127.0.0.2', '-u', 'carol', '-P', 'right-one', '-t', 'x', '-m', 'y'])
  const blocked = await waitFor('the blocked attempt logged', () => stack.db.collection<Logged>('events').findOne({ clientId: 'blocked-1' }), 20_000, 250)
  assert.equal(blocked.returnCode, 5)
  assert.equal(blocked.error?.message, 'not authorized: too many failed logins from 127.0.0.1; retry after 60 s')
})

test('JWT passwords: HS256 secret, RS256 from a JWKS file, ES256 from a JWKS URL; expiry, signature and topic claims enforced', async (t) => {
  const dir = await tempDir(t)
  const secret = 'a-test-secret-that-is-long-enough-1234'
  const rsa = await generateKeyPair('RS256')
  const ec = await generateKeyPair('ES256')
  const jwksFile = join(dir, 'jwks.json')
  await writeFile(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256' }] }))
  const ecJwks = JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256' }] })
  const jwksServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(ecJwks))
  jwksServer.listen(0, '127.0.0.1')
  await once(jwksServer, 'listening')
  t.after(() => jwksServer.close())
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as { port: number }).port}/jwks.json`

  const now = Math.floor(Date.now() / 1000)
  const hs = (claims: Record<string, unknown>, exp = now + 300) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(secret))
  const stackA = await startPair(t, { MQFN_JWT_SECRET: secret, MQFN_JWT_JWKS: jwksFile })
  const portA = stackA.stack.mqttPort

  const token = await hs({ sub: 'sensor-7', topics: { publish: ['sensors/%u/#'], subscribe: ['commands/%u/#'] } })
  const device = await connected(t, portA, { clientId: 'dev-7', username: 'ignored', password: token })
  assert.equal(await connack(portA, { username: 'jwt', password: await hs({ sub: 'late' }, now - 10) }), 4)
  assert.equal(await connack(portA, { username: 'jwt', password: `${token.slice(0, -4)}AAAA` }), 4)
  assert.equal(await connack(portA, { username: 'jwt', password: await hs({ topics: ['a/#'] }) }), 4)
  const rs = await new SignJWT({ sub: 'rsa-user' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).setExpirationTime(now + 60).sign(rsa.privateKey)
  assert.equal(await connack(portA, { username: 'jwt', password: rs, clientId: 'rs-1' }), 0)
  // an ES256 token is not accepted by a broker that only knows the RSA key
  const es = await new SignJWT({ sub: 'ec-user' }).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).setExpirationTime(now + 60).sign(ec.privateKey)
  assert.equal(await connack(portA, { username: 'jwt', password: es }), 4)

  // the token's topics: granted subscribe gets its QoS, the other 0x80; a refused publish is acknowledged and dropped
  assert.deepEqual(await suback(device, { 'commands/sensor-7/#': { qos: 1 }, 'commands/other/#': { qos: 1 } }), [1, 128])
  const watcher = await connected(t, portA, { clientId: 'watcher', username: 'jwt', password: await hs({ sub: 'watcher', topics: ['#'] }) })
  const seen: string[] = []
  watcher.on('message', (topic) => seen.push(topic))
  await watcher.subscribeAsync('sensors/#', { qos: 1 })
  await device.publishAsync('sensors/other/temp', 'nope', { qos: 1 })
  await device.publishAsync('sensors/sensor-7/temp', '21', { qos: 1 })
  await waitFor('the allowed message', () => seen.includes('sensors/sensor-7/temp'))
  assert.deepEqual(seen, ['sensors/sensor-7/temp'])
  assert.equal(device.connected, true)

  const events = stackA.stack.db.collection<Logged>('events')
  const denied = await waitFor('the refused publish recorded', () => events.findOne({ type: 'clientError', clientId: 'dev-7' }), 20_000, 250)
  assert.equal(denied.reason, 'not-authorized')
  assert.equal(denied.topic, 'sensors/other/temp')
  assert.equal(denied.error?.message, 'not authorized: publish to "sensors/other/temp"')
  const hello = await waitFor('clientConnected of dev-7', () => events.findOne({ type: 'clientConnected', clientId: 'dev-7' }), 20_000, 250)
  assert.equal(hello.username, 'sensor-7')
  // published events travel in their own queue: wait for them, then check there is no other
  const published = await waitFor('the published event', async () => {
    const docs = await events.find({ type: 'published', clientId: 'dev-7' }).toArray()
    return docs.length > 0 ? docs : null
  }, 20_000, 250)
  assert.deepEqual(published.map((e) => e.topic), ['sensors/sensor-7/temp'])

  // a broker with the JWKS at a URL takes the ES256 token
  const stackB = await startPair(t, { MQFN_JWT_JWKS: jwksUrl })
  assert.equal(await connack(stackB.stack.mqttPort, { username: 'jwt', password: es }), 0)
  assert.equal(await connack(stackB.stack.mqttPort, { username: 'jwt', password: rs }), 4)
})

test('ACL file: %u and %c substitution, first match wins, default deny, $SYS and forbidden wills refused, reloads apply to live subscriptions', async (t) => {
  const dir = await tempDir(t)
  const users = join(dir, 'users.yaml')
  const acl = join(dir, 'acl.yaml')
  for (const name of ['dana', 'eve', '#']) assert.equal((await user(users, ['add', name, '--password', 'pw-1234'])).code, 0)
  await writeFile(acl, [
    'rules:',
    '  - deny: publish',
    '    topic: devices/dana/locked',
    '  - allow: [publish, subscribe]',
    '    topic: devices/%u/#',
    '  - allow: publish',
    '    topic: clients/%c/status',
    '  - allow: subscribe',
    '    topic: broadcast/#',
    '  - allow: all',
    '    topic: "#"',
    '    username: eve',
    '',
  ].join('\n'))
  const { stack, broker } = await startPair(t, { MQFN_USERS_FILE: users, MQFN_ACL_FILE: acl })
  const port = stack.mqttPort
  const dana = await connected(t, port, { clientId: 'dana-phone', username: 'dana', password: 'pw-1234' })
  const eve = await connected(t, port, { clientId: 'eve-1', username: 'eve', password: 'pw-1234' })

  const subs = await suback(dana, {
    'devices/dana/#': { qos: 1 },
    'devices/#': { qos: 1 },
    'broadcast/news': { qos: 0 },
    'devices/eve/x': { qos: 1 },
  })
  assert.deepEqual(subs, [1, 128, 0, 128])

  const got: string[] = []
  eve.on('message', (topic) => got.push(topic))
  await eve.subscribeAsync('#', { qos: 1 })
  for (const topic of ['devices/dana/locked', 'devices/dana/temp', 'clients/dana-phone/status', 'clients/other/status', 'devices/eve/t', '$SYS/fake']) {
    await dana.publishAsync(topic, 'x', { qos: 1 })
  }
  await dana.publishAsync('devices/dana/done', 'x', { qos: 1 })
  await waitFor('the last allowed message', () => got.includes('devices/dana/done'))
  assert.deepEqual(got, ['devices/dana/temp', 'clients/dana-phone/status', 'devices/dana/done'])
  assert.equal(dana.connected, true)

  // a user named "#" would turn devices/%u/# into devices/#/#: a %u rule never matches such a name
  const wide = await connected(t, port, { clientId: 'wide', username: '#', password: 'pw-1234' })
  assert.deepEqual(await suback(wide, { 'devices/#': { qos: 0 }, 'broadcast/x': { qos: 0 } }), [128, 0])

  // a will to a forbidden topic refuses the connection
  assert.equal(await connack(port, { clientId: 'willful', username: 'dana', password: 'pw-1234', will: { topic: 'devices/eve/will', payload: Buffer.from('bye'), qos: 0, retain: false } }), 5)
  // (connack() drops the connection, so this will is published: to a topic no subscriber below watches)
  assert.equal(await connack(port, { clientId: 'good-will', username: 'dana', password: 'pw-1234', will: { topic: 'clients/good-will/status', payload: Buffer.from('bye'), qos: 0, retain: false } }), 0)

  const events = stack.db.collection<Logged>('events')
  const refusedWill = await waitFor('the will refusal', () => events.findOne({ type: 'connectionError', clientId: 'willful' }), 20_000, 250)
  assert.equal(refusedWill.error?.message, 'not authorized: will publish to "devices/eve/will"')
  const denials = await waitFor('four refused publishes', async () => {
    const docs = await events.find({ type: 'clientError', clientId: 'dana-phone' }).toArray()
    return docs.length >= 4 ? docs : null
  }, 20_000, 250)
  assert.deepEqual(denials.map((d) => d.topic).sort(), ['$SYS/fake', 'clients/other/status', 'devices/dana/locked', 'devices/eve/t'])
  const publishedTopics = await waitFor('three published events', async () => {
    const docs = await events.find({ type: 'published', clientId: 'dana-phone' }).toArray()
    return docs.length >= 3 ? docs.map((e) => e.topic) : null
  }, 20_000, 250)
  assert.deepEqual(publishedTopics.sort(), ['clients/dana-phone/status', 'devices/dana/done', 'devices/dana/temp'])

  // a reloaded ACL stops deliveries on a subscription granted under the old one
  const danaGot: string[] = []
  dana.on('message', (topic) => danaGot.push(topic))
  await eve.publishAsync('broadcast/news', 'one', { qos: 0 })
  await waitFor('broadcast before the reload', () => danaGot.includes('broadcast/news'))
  await writeFile(acl, 'rules:\n  - allow: all\n    topic: "#"\n    username: eve\n  - allow: [publish, subscribe]\n    topic: devices/%u/#\n')
  await waitFor('the ACL reloaded', () => /ACL file reloaded/.test(broker.output()), 10_000, 200)
  await eve.publishAsync('broadcast/news', 'two', { qos: 0 })
  await eve.publishAsync('devices/dana/ping', 'p', { qos: 0 })
  await waitFor('the message after the reload', () => danaGot.includes('devices/dana/ping'))
  assert.deepEqual(danaGot, ['broadcast/news', 'devices/dana/ping'])
})

test('a broken ACL or users file stops start-up with the rule named', async (t) => {
  const dir = await tempDir(t)
  const acl = join(dir, 'acl.json')
  await writeFile(acl, JSON.stringify({ rules: [{ allow: 'publish', topic: 'a/#' }, { allow: 'publish', deny: 'subscribe', topic: 'b' }, { allow: 'read', topic: 'c/#/d' }] }))
  const stack = await processStack(t, {})
  const broker = mqfn(t, 'broker', stack.brokerEnv({ MQFN_ACL_FILE: acl }))
  assert.equal(await broker.exited(), 1)
  assert.match(broker.output(), /ACL file .*acl\.json: rules\.1: a rule has exactly one of "allow" or "deny"/)
  assert.match(broker.output(), /rules\.2\.allow/)
  assert.match(broker.output(), /rules\.2\.topic: "#" must be a whole level and the last one/)

  const users = join(dir, 'users.yaml')
  await writeFile(users, 'users:\n  zed:\n    pasword: x\n')
  const broker2 = mqfn(t, 'broker', stack.brokerEnv({ MQFN_AUTH: 'required', MQFN_USERS_FILE: users }))
  assert.equal(await broker2.exited(), 1)
  assert.match(broker2.output(), /Users file .*users\.yaml: users\.zed/)
})

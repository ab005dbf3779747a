import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import { promisify } from 'node:util'
import type { Binary } from 'mongodb'
import mqtt, { type IClientOptions } from 'mqtt'
import type { BrokerConfig } from '../broker/config.ts'
import { freePort } from '../scripts/services.ts'
import { mqfn, ready } from './helpers/processes.ts'
import { connect, recorder, services, startStack, unique, waitFor, type Stack } from './helpers/stack.ts'

const run = promisify(execFile)
const functions = Object.fromEntries(['ready', 'clientConnected', 'subscribed', 'published'].map((type) => [`${type}.ts`, recorder(type)]))

// ---- a throwaway PKI, made with the openssl CLI as an operator would ----

const dir = await mkdtemp(join(tmpdir(), 'mqfn-tls-'))
after(() => rm(dir, { recursive: true, force: true }))
const file = (name: string) => join(dir, name)
const openssl = (...args: string[]) => run('openssl', args)
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

async function makeCa(name: string): Promise<void> {
  await openssl('req', '-x509', ...EC, '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`), '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
}

/** A key and a certificate signed by `ca`; a server one names 127.0.0.1 and localhost. */
async function makeCert(name: string, ca: string, cn: string, serial: number, use: 'server' | 'client'): Promise<void> {
  await openssl('req', ...EC, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${cn}`)
  const ext = use === 'server' ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n'
  await writeFile(file(`${name}.ext`), ext)
  await openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.crt`), '-CAkey', file(`${ca}.key`), '-set_serial', String(serial),
    '-days', '2', '-extfile', file(`${name}.ext`), '-out', file(`${name}.crt`))
}

await makeCa('ca')
await makeCa('other-ca')
await makeCert('server', 'ca', 'mqfn-server', 1001, 'server')
await makeCert('server2', 'ca', 'mqfn-server-2', 2002, 'server')
await makeCert('device', 'ca', 'device-1', 3003, 'client')
await makeCert('stranger', 'other-ca', 'device-1', 4004, 'client')
const pem = async (name: string) => readFile(file(name))
const caPem = await pem('ca.crt')

const TLS: Partial<BrokerConfig> = { tlsCert: file('server.crt'), tlsKey: file('server.key'), tlsPort: 0, wssPort: 0 }

function portOf(stack: Stack, protocol: 'mqtts' | 'wss'): number {
  return stack.broker.listeners.find((l) => l.protocol === protocol)?.port as number
}

interface Call { type: string; event: { clientId: string | null; topic?: string; payload?: Binary; username?: string; listeners?: { protocol: string }[] } }

const calls = (stack: Stack, filter: Record<string, unknown>) => stack.db.collection<Call>('calls').find(filter).toArray()
const waitCall = (stack: Stack, type: string, clientId: string) =>
  waitFor(`${type} of ${clientId}`, () => stack.db.collection<Call>('calls').findOne({ type, 'event.clientId': clientId }), 20_000, 200)

/** Resolves with the error an MQTT.js connection attempt ends with. */
function connectError(opts: IClientOptions): Promise<Error & { code?: string | number }> {
  const client = mqtt.connect({ host: '127.0.0.1', reconnectPeriod: 0, connectTimeout: 20_000, ...opts })
  return new Promise((resolve, reject) => {
    client.once('connect', () => reject(new Error(`${opts.clientId} connected`)))
    client.once('error', (err) => {
      client.end(true)
      resolve(err)
    })
  })
}

test('MQTT over TLS: mosquitto_sub gets what mosquitto_pub sent, byte for byte, and the publish is captured', async (t) => {
  const stack = await startStack(t, { functions, broker: TLS })
  assert.deepEqual(stack.broker.listeners.map((l) => l.protocol), ['mqtt', 'ws', 'mqtts', 'wss'])
  const port = String(portOf(stack, 'mqtts'))
  const payload = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a, 0x0d, ...Buffer.from(' tls ✓ ')])
  await writeFile(file('payload.bin'), payload)
  const tlsArgs = ['--cafile', file('ca.crt'), '-h', '127.0.0.1', '-p', port]
  const sub = run('mosquitto_sub', [...tlsArgs, '-i', 'tls-sub', '-t', 'tls/#', '-q', '1', '-C', '1', '-N'], { encoding: 'buffer' })
  await waitCall(stack, 'subscribed', 'tls-sub')
  await run('mosquitto_pub', [...tlsArgs, '-i', 'tls-pub', '-t', 'tls/bytes', '-f', file('payload.bin'), '-q', '1'])
  assert.deepEqual((await sub).stdout, payload)

  const published = await waitCall(stack, 'published', 'tls-pub')
  assert.equal(published.event.topic, 'tls/bytes')
  assert.deepEqual(Buffer.from(published.event.payload?.buffer ?? []), payload)
  assert.equal((await calls(stack, { type: 'published' })).length, 1)
  const readyEvent = await waitFor('ready', () => stack.db.collection<Call>('calls').findOne({ type: 'ready' }), 20_000, 200)
  assert.deepEqual(readyEvent.event.listeners?.map((l) => l.protocol), ['mqtt', 'ws', 'mqtts', 'wss'])
})

test('MQTT.js over mqtts:// and wss:// with the CA; a client that does not trust the CA fails the handshake', async (t) => {
  const stack = await startStack(t, { functions, broker: TLS })
  const secure = await connect(portOf(stack, 'mqtts'), { protocol: 'mqtts', ca: caPem, clientId: 'js-mqtts' })
  const overWss = await connect(portOf(stack, 'wss'), { protocol: 'wss', path: '/mqtt', ca: caPem, clientId: 'js-wss' })
  await overWss.subscribeAsync('js/#', { qos: 1 })
  const received = new Promise<Buffer>((resolve) => overWss.once('message', (_topic, payload) => resolve(payload)))
  await secure.publishAsync('js/one', 'over tls', { qos: 1 })
  assert.equal((await received).toString(), 'over tls')
  assert.equal((await waitCall(stack, 'published', 'js-mqtts')).event.topic, 'js/one')

  // TLS 1.2 is the floor: the broker answers an older ClientHello with a protocol_version alert
  const sClient = (version: string) => {
    const done = run('openssl', ['s_client', '-connect', `127.0.0.1:${portOf(stack, 'mqtts')}`, '-CAfile', file('ca.crt'), version], { timeout: 20_000 })
    done.child.stdin?.end() // s_client quits after the handshake once its input ends
    return done
  }
  assert.match((await sClient('-tls1_2')).stdout, /Protocol *: TLSv1\.2\n[\s\S]*Verify return code: 0 \(ok\)/)
  const old = await sClient('-tls1_1').then(() => undefined, (err: { code?: number; stderr?: string }) => err)
  assert.notEqual(old?.code, 0)
  assert.match(String(old?.stderr), /alert protocol version/)

  for (const protocol of ['mqtts', 'wss'] as const) {
    const err = await connectError({ protocol, port: portOf(stack, protocol), path: '/mqtt', clientId: `js-untrusting-${protocol}` })
    assert.equal(err.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', `${protocol}: ${err.message}`)
  }
})

test('tlsClientCerts required: a certificate from the CA connects; none, or one from another CA, fails the handshake', async (t) => {
  const stack = await startStack(t, { functions, broker: { ...TLS, tlsCa: file('ca.crt'), tlsClientCerts: 'required' } })
  const base = ['--cafile', file('ca.crt'), '-h', '127.0.0.1', '-p', String(portOf(stack, 'mqtts')), '-t', 'req/x', '-m', 'hi', '-q', '1']
  const refused = [
    ['req-none'],
    ['req-stranger', '--cert', file('stranger.crt'), '--key', file('stranger.key')],
  ]
  for (const [clientId, ...cert] of refused) {
    const failed = await run('mosquitto_pub', [...base, '-i', clientId as string, ...cert]).then(() => undefined, (err: { code?: number }) => err)
    assert.ok(failed, `${clientId} must not get through`)
    assert.notEqual(failed.code, 0)
  }
  await run('mosquitto_pub', [...base, '-i', 'req-device', '--cert', file('device.crt'), '--key', file('device.key')])
  await waitCall(stack, 'published', 'req-device')
  // each event type has its own queue: the connect's handler may finish after the publish's
  await waitCall(stack, 'clientConnected', 'req-device')
  // the refused ones tried first: had they connected, their events would be in by now
  assert.deepEqual((await calls(stack, { type: 'published' })).map((c) => c.event.clientId), ['req-device'])
  assert.deepEqual((await calls(stack, { type: 'clientConnected' })).map((c) => c.event.clientId), ['req-device'])
})

test('tlsCnAsUsername: a verified certificate logs in as its CN without a password; no certificate, or an unverified one, gets CONNACK 5', async (t) => {
  const stack = await startStack(t, {
    functions,
    broker: { ...TLS, auth: 'required', tlsCa: file('ca.crt'), tlsClientCerts: 'optional', tlsCnAsUsername: true },
  })
  const device = { ca: caPem, cert: await pem('device.crt'), key: await pem('device.key') }
  await connect(portOf(stack, 'mqtts'), { protocol: 'mqtts', clientId: 'cn-mqtts', ...device })
  await connect(portOf(stack, 'wss'), { protocol: 'wss', path: '/mqtt', clientId: 'cn-wss', ...device })
  assert.equal((await waitCall(stack, 'clientConnected', 'cn-mqtts')).event.username, 'device-1')
  assert.equal((await waitCall(stack, 'clientConnected', 'cn-wss')).event.username, 'device-1')

  const stranger = { ca: caPem, cert: await pem('stranger.crt'), key: await pem('stranger.key') }
  for (const [clientId, opts] of [['cn-none', { ca: caPem }], ['cn-stranger', stranger]] as const) {
    const err = await connectError({ protocol: 'mqtts', port: portOf(stack, 'mqtts'), clientId, ...opts })
    assert.equal(err.code, 5, `${clientId}: ${err.message}`)
    assert.match(err.message, /Not authorized/)
  }
  assert.deepEqual((await calls(stack, { type: 'clientConnected' })).map((c) => c.event.clientId).sort(), ['cn-mqtts', 'cn-wss'])
})

test('TLS configuration errors stop `mqfn broker` with exit 1, naming the setting, its variable and the file', async (t) => {
  const { redisUrl } = await services()
  await writeFile(file('garbage.pem'), 'not a certificate\n')
  const missing = file('missing.crt')
  const cases: [NodeJS.ProcessEnv, string][] = [
    [{ MQFN_TLS_CERT: file('server.crt') },
      `MQFN_ERR_TLS_CONFIG: TLS settings: tlsCert (env MQFN_TLS_CERT) is set (${file('server.crt')}) but tlsKey (env MQFN_TLS_KEY) is not: set both to serve MQTT over TLS, or neither`],
    [{ MQFN_TLS_KEY: file('server.key') },
      `MQFN_ERR_TLS_CONFIG: TLS settings: tlsKey (env MQFN_TLS_KEY) is set (${file('server.key')}) but tlsCert (env MQFN_TLS_CERT) is not: set both to serve MQTT over TLS, or neither`],
    [{ MQFN_TLS_CERT: file('server.crt'), MQFN_TLS_KEY: file('server.key'), MQFN_TLS_CLIENT_CERTS: 'optional' },
      'MQFN_ERR_TLS_CONFIG: TLS settings: tlsClientCerts (env MQFN_TLS_CLIENT_CERTS) is "optional" but tlsCa (env MQFN_TLS_CA) is not set: client certificates are verified against that CA bundle'],
    [{ MQFN_TLS_CERT: missing, MQFN_TLS_KEY: file('server.key') },
      `MQFN_ERR_TLS_FILE: tlsCert (env MQFN_TLS_CERT) ${missing}: cannot read it: ENOENT: no such file or directory, open '${missing}'`],
    [{ MQFN_TLS_CERT: file('garbage.pem'), MQFN_TLS_KEY: file('server.key') },
      `MQFN_ERR_TLS_FILE: tlsCert (env MQFN_TLS_CERT) ${file('garbage.pem')}: not a PEM certificate file (no "-----BEGIN CERTIFICATE-----" block)`],
    [{ MQFN_TLS_CERT: file('server.crt'), MQFN_TLS_KEY: file('server.crt') },
      `MQFN_ERR_TLS_FILE: tlsKey (env MQFN_TLS_KEY) ${file('server.crt')}: not a PEM private key (no "-----BEGIN … PRIVATE KEY-----" block)`],
    [{ MQFN_TLS_CERT: file('server.crt'), MQFN_TLS_KEY: file('server.key'), MQFN_TLS_CA: file('garbage.pem'), MQFN_TLS_CLIENT_CERTS: 'required' },
      `MQFN_ERR_TLS_FILE: tlsCa (env MQFN_TLS_CA) ${file('garbage.pem')}: not a PEM certificate file (no "-----BEGIN CERTIFICATE-----" block)`],
    [{ MQFN_TLS_CERT: file('server.crt'), MQFN_TLS_KEY: file('device.key') },
      `MQFN_ERR_TLS_FILE: tlsKey (env MQFN_TLS_KEY) ${file('device.key')}: does not match the certificate in tlsCert (env MQFN_TLS_CERT) ${file('server.crt')} (the first certificate of the file must be the server's own)`],
  ]
  for (const [env, message] of cases) {
    const broker = mqfn(t, 'broker', { REDIS_URL: redisUrl, MQFN_HOST: '127.0.0.1', MQFN_MQTT_PORT: '0', MQFN_WS_ENABLED: 'false', ...env })
    assert.equal(await broker.exited(), 1, broker.output())
    assert.equal(broker.output(), `mqfn broker: ${message}\n`)
  }
})

test('a renewed certificate is served to new connections without a restart; a bad file keeps the old one', async (t) => {
  const { redisUrl } = await services()
  const [tlsPort, wssPort] = [await freePort(), await freePort()]
  const certPath = file('live.crt')
  const keyPath = file('live.key')
  await writeFile(certPath, await pem('server.crt'))
  await writeFile(keyPath, await pem('server.key'))
  const broker = mqfn(t, 'broker', {
    REDIS_URL: redisUrl, MQFN_PREFIX: `{${unique('tls')}}`, MQFN_HOST: '127.0.0.1', MQFN_MQTT_PORT: '0', MQFN_WS_PORT: '0', MQFN_LOG_LEVEL: 'info',
    MQFN_TLS_CERT: certPath, MQFN_TLS_KEY: keyPath, MQFN_TLS_PORT: String(tlsPort), MQFN_WSS_PORT: String(wssPort),
  })
  await ready(broker, 'broker ready')
  const readyLine = broker.output().split('\n').find((l) => l.includes('broker ready')) as string
  assert.deepEqual((JSON.parse(readyLine) as { listeners: { protocol: string; port: number }[] }).listeners.filter((l) => l.port === tlsPort || l.port === wssPort),
    [{ protocol: 'mqtts', address: '127.0.0.1', port: tlsPort }, { protocol: 'wss', address: '127.0.0.1', port: wssPort }])

  const served = (port: number) => new Promise<{ serial: string; cn: unknown }>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: caPem }, () => {
      const cert = socket.getPeerCertificate()
      socket.end()
      resolve({ serial: cert.serialNumber, cn: cert.subject.CN })
    })
    socket.once('error', reject)
  })
  const first = new X509Certificate(await pem('server.crt')).serialNumber
  const renewed = new X509Certificate(await pem('server2.crt')).serialNumber
  assert.notEqual(first, renewed)
  assert.deepEqual(await served(tlsPort), { serial: first, cn: 'mqfn-server' })

  await writeFile(certPath, 'truncated by a failed renewal\n')
  await ready(broker, 'keeping the previous certificate')
  assert.match(broker.output(), /"err":"tlsCert \(env MQFN_TLS_CERT\) [^"]*live\.crt: not a PEM certificate file/)
  assert.deepEqual(await served(tlsPort), { serial: first, cn: 'mqfn-server' })

  await writeFile(keyPath, await pem('server2.key'))
  await writeFile(certPath, await pem('server2.crt'))
  await ready(broker, 'TLS certificate reloaded')
  assert.deepEqual(await served(tlsPort), { serial: renewed, cn: 'mqfn-server-2' })
  assert.deepEqual(await served(wssPort), { serial: renewed, cn: 'mqfn-server-2' })

  broker.kill('SIGTERM')
  assert.equal(await broker.exited(), 0, broker.output())
})

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { hashPassword } from '../../broker/security/password-hash.ts'
import { writeUsers } from '../../broker/security/users-file.ts'

/** A temporary directory removed after the test. */
export async function tempDir(t: TestContext, label = 'mqfn-auth-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), label))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** A users file where every name has `password`, and an ACL file of `rules` (YAML lines). */
export async function securityFiles(t: TestContext, names: readonly string[], rules: readonly string[] | undefined, password = 'pw-1234'): Promise<{ usersFile: string; aclFile?: string }> {
  const dir = await tempDir(t)
  const usersFile = join(dir, 'users.yaml')
  const hash = await hashPassword(password)
  writeUsers(usersFile, new Map(names.map((n) => [n, { password: hash }])))
  if (rules === undefined) return { usersFile }
  const aclFile = join(dir, 'acl.yaml')
  await writeFile(aclFile, ['rules:', ...rules, ''].join('\n'))
  return { usersFile, aclFile }
}

/** The CONNACK code a connection gets: 0 accepted (then closed), else the return / reason code. */
export async function connack(port: number, opts: IClientOptions): Promise<number> {
  const client = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 10_000, ...opts })
  try {
    return await new Promise<number>((resolve, reject) => {
      client.once('connect', () => resolve(0))
      client.once('error', (err: Error & { code?: unknown }) => (typeof err.code === 'number' ? resolve(err.code) : reject(err)))
    })
  } finally {
    client.end(true)
  }
}

/** A connected MQTT.js client, ended after the test. */
export async function connected(t: TestContext, port: number, opts: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, ...opts })
  t.after(() => void client.end(true))
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  return client
}

/** The SUBACK codes, one per filter in order, as the broker sent them (MQTT.js turns 0x80 into an error). */
export function suback(client: MqttClient, filters: Record<string, { qos: 0 | 1 | 2 }>): Promise<number[]> {
  return new Promise((resolve) => {
    const onPacket = (packet: { cmd: string }) => {
      if (packet.cmd !== 'suback') return
      client.removeListener('packetreceive', onPacket)
      const p = packet as { granted?: number[]; reasonCodes?: number[] }
      resolve(p.granted ?? p.reasonCodes ?? [])
    }
    client.on('packetreceive', onPacket)
    client.subscribe(filters, () => {})
  })
}

import { connect, type Socket } from 'node:net'
import { generate, parser as mqttParser, type Packet, type QoS } from 'mqtt-packet'

/*
 * A minimal MQTT 3.1.1 client on mqtt-packet: the load generator must not be the
 * bottleneck on a 2-core machine, and MQTT.js' stores, timers and per-packet
 * promises cost more CPU than the brokers under test spend on a message.
 */

export interface RawClientOptions {
  port: number
  host?: string
  localAddress?: string
  clientId: string
  keepalive?: number
  /** Clean session. @defaultValue true */
  clean?: boolean
}

export class RawClient {
  readonly socket: Socket
  private readonly parser = mqttParser({ protocolVersion: 4 })
  private nextId = 0
  private readonly acks = new Map<number, () => void>()
  onPublish: (topic: string, payload: Buffer, qos: QoS) => void = () => {}
  onPuback: (messageId: number) => void = () => {}

  private constructor(socket: Socket) {
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.parser.parse(chunk))
    this.parser.on('packet', (p: Packet) => this.packet(p))
  }

  static open(opts: RawClientOptions): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port: opts.port, host: opts.host ?? '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) })
      const client = new RawClient(socket)
      socket.once('error', reject)
      client.acks.set(-1, () => {
        socket.off('error', reject)
        resolve(client)
      })
      socket.once('connect', () => {
        client.write({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: opts.clientId, clean: opts.clean ?? true, keepalive: opts.keepalive ?? 60 })
      })
    })
  }

  private packet(p: Packet): void {
    switch (p.cmd) {
      case 'connack':
        if (p.returnCode !== 0) this.socket.destroy(new Error(`connack ${p.returnCode}`))
        else this.settle(-1)
        break
      case 'suback':
        this.settle(p.messageId ?? 0)
        break
      case 'puback':
        this.onPuback(p.messageId ?? 0)
        break
      case 'publish':
        if (p.qos === 1) this.write({ cmd: 'puback', messageId: p.messageId ?? 0 })
        this.onPublish(p.topic, p.payload as Buffer, p.qos)
        break
      default:
        break
    }
  }

  private settle(id: number): void {
    const cb = this.acks.get(id)
    this.acks.delete(id)
    cb?.()
  }

  /** Returns false when the socket buffer is full (wait for 'drain'). */
  write(p: Packet): boolean {
    return this.socket.write(generate(p))
  }

  id(): number {
    this.nextId = (this.nextId % 65535) + 1
    return this.nextId
  }

  subscribe(topic: string, qos: QoS): Promise<void> {
    const messageId = this.id()
    return new Promise((resolve) => {
      this.acks.set(messageId, resolve)
      this.write({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] })
    })
  }

  publish(topic: string, payload: Buffer, qos: QoS): { ok: boolean; messageId: number } {
    const messageId = qos > 0 ? this.id() : 0
    const ok = this.write({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, ...(qos > 0 ? { messageId } : {}) })
    return { ok, messageId }
  }

  drained(): Promise<void> {
    return new Promise((resolve) => this.socket.once('drain', resolve))
  }

  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve()
      this.socket.once('close', () => resolve())
      this.socket.end(generate({ cmd: 'disconnect' }))
      setTimeout(() => this.socket.destroy(), 1000).unref()
    })
  }
}

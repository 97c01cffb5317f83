/**
 * A Foxglove WebSocket client of the live endpoint (`/foxglove`): the
 * `FoxgloveClient` of `@foxglove/ws-protocol` over a `ws` WebSocket, which
 * keeps what it was told (channels, statuses, messages by topic) and can
 * stop reading its socket (a stalled viewer).
 *
 * @example
 * const viewer = await FoxgloveViewer.connect(server.wsUrl)
 * await viewer.subscribe('/robots/Bender/pose')
 * await viewer.until('/robots/Bender/pose', 3, 'three poses')
 * viewer.close()
 */
import wsProtocol, { type Channel } from '@foxglove/ws-protocol'
import { WebSocket } from 'ws'
import { waitFor, withTimeout } from './wait.ts'

// A CommonJS package: its classes are members of its default export.
const { FoxgloveClient } = wsProtocol

/** A message as received: its log time and its decoded JSON. */
export interface FoxgloveMessage {
  readonly topic: string
  readonly logTime: bigint
  readonly data: unknown
  /** The bytes received (the payload). */
  readonly bytes: number
}

/** A status message of the server. */
export interface FoxgloveStatus {
  readonly level: number
  readonly message: string
  readonly id?: string
}

/** A connected Foxglove client. */
export class FoxgloveViewer {
  readonly ws: WebSocket
  readonly client: InstanceType<typeof FoxgloveClient>
  /** Every channel advertised and not withdrawn, by topic. */
  readonly channels = new Map<string, Channel>()
  /** Advertise messages received, and their channels in all. */
  advertisements = 0
  /** Messages by topic, in the order they came. */
  readonly messages = new Map<string, FoxgloveMessage[]>()
  /** Every status message, and the ids of those removed since. */
  readonly statuses: FoxgloveStatus[] = []
  readonly removedStatuses: string[] = []
  serverInfo: { name: string; capabilities: string[] } | undefined
  /** Resolves with the close code once the connection is closed. */
  readonly closed: Promise<number>

  /** {@link closed}, or a loud failure after the safety timeout. */
  ended(): Promise<number> {
    return withTimeout(this.closed, 'the close of the Foxglove connection')
  }
  readonly #subscriptions = new Map<number, string>()
  readonly #byTopic = new Map<string, number>()

  private constructor(ws: WebSocket) {
    this.ws = ws
    this.client = new FoxgloveClient({ ws: ws as never })
    this.closed = new Promise((resolve) => ws.on('close', resolve))
    this.client.on('serverInfo', (info) => (this.serverInfo = info))
    this.client.on('advertise', (channels) => {
      this.advertisements++
      for (const channel of channels) this.channels.set(channel.topic, channel)
    })
    this.client.on('unadvertise', (ids) => {
      for (const [topic, channel] of this.channels) {
        if (ids.includes(channel.id)) this.channels.delete(topic)
      }
    })
    this.client.on('status', (status) => this.statuses.push(status))
    this.client.on('removeStatus', (event) =>
      this.removedStatuses.push(...event.statusIds),
    )
    this.client.on('message', (event) => {
      const topic = this.#subscriptions.get(event.subscriptionId)
      if (topic === undefined) throw new Error('a message of no subscription')
      const bytes = Buffer.from(
        event.data.buffer,
        event.data.byteOffset,
        event.data.byteLength,
      ).toString()
      let list = this.messages.get(topic)
      if (list === undefined) this.messages.set(topic, (list = []))
      list.push({
        topic,
        logTime: event.timestamp,
        data: JSON.parse(bytes),
        bytes: event.data.byteLength,
      })
    })
  }

  /**
   * Connects to `wsUrl` + `/foxglove` (with `token` as `access_token`, as
   * Foxglove's URL field carries it) and waits for the server's info.
   */
  static async connect(wsUrl: string, token?: string): Promise<FoxgloveViewer> {
    const query =
      token === undefined ? '' : `?access_token=${encodeURIComponent(token)}`
    const ws = new WebSocket(`${wsUrl}/foxglove${query}`, [
      FoxgloveClient.SUPPORTED_SUBPROTOCOL,
    ])
    const viewer = new FoxgloveViewer(ws)
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.once('error', reject)
        ws.once('close', (code) =>
          reject(new Error(`closed with ${code} before the server info`)),
        )
        viewer.client.on('serverInfo', () => resolve())
      }),
      'the Foxglove server info',
    )
    return viewer
  }

  /** Waits until `topic` is advertised and returns its channel. */
  channel(topic: string): Promise<Channel> {
    return waitFor(() => this.channels.get(topic), `channel ${topic}`)
  }

  /** Subscribes to `topic` once it is advertised. */
  async subscribe(topic: string): Promise<void> {
    const channel = await this.channel(topic)
    const id = this.client.subscribe(channel.id)
    this.#subscriptions.set(id, topic)
    this.#byTopic.set(topic, id)
  }

  unsubscribe(topic: string): void {
    const id = this.#byTopic.get(topic)
    if (id === undefined) throw new Error(`not subscribed to ${topic}`)
    this.client.unsubscribe(id)
    this.#byTopic.delete(topic)
  }

  /** The messages of `topic` so far. */
  received(topic: string): FoxgloveMessage[] {
    return this.messages.get(topic) ?? []
  }

  /** Waits until `topic` has at least `count` messages; returns them. */
  until(
    topic: string,
    count: number,
    what: string,
  ): Promise<FoxgloveMessage[]> {
    return waitFor(
      () => this.received(topic).length >= count && this.received(topic),
      what,
    )
  }

  /** Stops reading the socket: what the server sends piles up. */
  pause(): void {
    ;(this.ws as unknown as { _socket: { pause(): void } })._socket.pause()
  }

  resume(): void {
    ;(this.ws as unknown as { _socket: { resume(): void } })._socket.resume()
  }

  close(): void {
    this.ws.close()
  }
}

/**
 * The live Foxglove endpoint `ws://HOST:PORT/foxglove`: the Foxglove
 * WebSocket protocol (`foxglove.websocket.v1`) of `@foxglove/ws-protocol`,
 * so that Foxglove and Lichtblick open a fleet's live positions with one
 * URL (docs/robotics.md).
 *
 * Channels (messages.ts): `/robots/<name>/pose` and `/robots/<name>/odometer`
 * per robot, advertised as robots appear, and `/fleet/scene`, the latest
 * position of each robot that moved, at most `hz` times a second; a new
 * subscription to it makes the next update carry every robot.
 *
 * Commits come from the server's commit fan-out (live/fanout.ts, shared
 * with `GET /api/live`), so a message goes out only after its event
 * committed, and a message is built only for a channel someone subscribed
 * to. A client whose unsent bytes pass `maxBufferBytes` has its messages
 * dropped until it catches up (it is told by a status message, as
 * foxglove_bridge does); one that lets control messages (advertisements of
 * new robots) pile up past {@link CONTROL_FACTOR} times that, or misses a
 * pong, is disconnected. Ingest never waits for a client.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import wsProtocol, {
  type ChannelId,
  type IWebSocket,
} from '@foxglove/ws-protocol'
import type { Logger } from 'pino'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import {
  checkUpgrade,
  isRefused,
  refusedUpgradeAnswer,
  type Access,
  type Refused,
} from '../auth/access.ts'
import type { Identity } from '../auth/tokens.ts'
import { rawHttpError, TelemetryError, type ErrorCode } from '../errors.ts'
import { FOXGLOVE_PATH } from './constants.ts'
import type { CommitSource } from '../live/fanout.ts'
import type { FoxgloveMetrics } from '../metrics.ts'
import {
  latestEvent,
  type Store,
  type StoredEvent,
  type Unwatch,
} from '../store/store.ts'
import {
  JSON_PROFILE,
  logTime,
  odometerJson,
  odometerTopic,
  poseJson,
  poseTopic,
  SCENE_SCHEMA,
  SCENE_TOPIC,
  sceneJson,
  type ChannelSchema,
} from './messages.ts'

// A CommonJS package: its classes are members of its default export.
const { FoxgloveServer, StatusLevel } = wsProtocol

/** Past this many times `maxBufferBytes` unsent, a client is disconnected. */
export const CONTROL_FACTOR = 4

/** The first byte of a binary message-data frame (ws-protocol's BinaryOpcode). */
const MESSAGE_DATA = 1

/** Robots read from the store at once when the endpoint starts. */
const ROBOTS_PAGE = 1000

/** The status a client is told while its messages are dropped. */
const DROPPING_STATUS = 'fleet-telemetry.dropping'

/** Options of {@link FoxgloveLive}. */
export interface FoxgloveOptions {
  /** Where the robots known before the first client are read. */
  readonly store: Pick<Store, 'listRobots'>
  /** Where commits are told: the server's fan-out. */
  readonly commits: CommitSource
  readonly logger: Logger
  /** `/fleet/scene` updates a second, at most. */
  readonly hz: number
  /** Clients at once, at most; one more is refused with 503. */
  readonly maxClients: number
  /** Unsent bytes of a client past which its messages are dropped. */
  readonly maxBufferBytes: number
  /** Ping period; a client that missed the previous pong is closed. 0: never. */
  readonly keepaliveMs: number
  /** Access control: a `read` token; none without a tokens file. */
  readonly access?: Access
  readonly metrics?: FoxgloveMetrics
  readonly onRefused?: (refused: Refused, remote: string | undefined) => void
}

/** A robot's channels and its latest event, when known. */
interface RobotChannels {
  readonly pose: ChannelId
  readonly odometer: ChannelId
  latest: StoredEvent | undefined
}

/** The JSON schema channel of one topic. */
function channel(topic: string, schema: ChannelSchema) {
  return {
    topic,
    encoding: schema.messageEncoding,
    schemaName: schema.name,
    schema: schema.text,
    schemaEncoding: schema.schemaEncoding,
  }
}

/**
 * One client's WebSocket as the protocol server sees it: what it sends
 * goes through the buffer limits here.
 */
class Connection implements IWebSocket {
  binaryType = 'arraybuffer'
  onerror: IWebSocket['onerror'] = null
  onopen: IWebSocket['onopen'] = null
  onclose: IWebSocket['onclose'] = null
  onmessage: IWebSocket['onmessage'] = null
  readonly ws: WebSocket
  readonly name: string
  identity: Identity | undefined
  /** Whether messages are being dropped (the client was told). */
  dropping = false
  /** Whether a pong came since the last ping. */
  alive = true
  readonly #live: FoxgloveLive
  readonly #maxBufferBytes: number

  constructor(
    ws: WebSocket,
    name: string,
    live: FoxgloveLive,
    maxBufferBytes: number,
  ) {
    this.ws = ws
    this.name = name
    this.#live = live
    this.#maxBufferBytes = maxBufferBytes
  }

  get protocol(): string {
    return this.ws.protocol
  }

  /**
   * One parameter: the protocol server then sends each message as one
   * frame (with two it sends a header and a payload frame), so a message
   * is dropped or sent whole.
   */
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    const buffered = this.ws.bufferedAmount
    if (typeof data !== 'string' && firstByte(data) === MESSAGE_DATA) {
      // Judged before the write: a client that keeps up takes a message
      // of any size.
      if (buffered > this.#maxBufferBytes) {
        this.#live.dropped(this)
        return
      }
      if (this.dropping) this.#live.caughtUp(this)
    } else if (buffered > CONTROL_FACTOR * this.#maxBufferBytes) {
      this.#live.tooSlow(this)
      return
    }
    this.ws.send(data)
  }

  close(): void {
    this.ws.close(1001, 'server shutting down')
  }
}

function firstByte(data: ArrayBuffer | ArrayBufferView): number | undefined {
  return ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, 1)[0]
    : new Uint8Array(data, 0, 1)[0]
}

/** The Foxglove endpoint of one server. */
export class FoxgloveLive {
  readonly #options: FoxgloveOptions
  readonly #server: InstanceType<typeof FoxgloveServer>
  readonly #wss: WebSocketServer
  readonly #connections = new Set<Connection>()
  /** Upgrades accepted and not yet open, counted against the limit. */
  #handshaking = 0
  readonly #robots = new Map<string, RobotChannels>()
  /** Channels at least one client subscribed to. */
  readonly #subscribed = new Set<ChannelId>()
  readonly #scene: ChannelId
  /** Robots that moved since the last scene update. */
  readonly #moved = new Set<string>()
  /** Whether the next scene update carries every robot. */
  #sceneAll = false
  #tick: NodeJS.Timeout | undefined
  readonly #keepalive: NodeJS.Timeout | undefined
  /** Watching commits and knowing every robot, while a client is open. */
  #started: Promise<Unwatch> | undefined
  /** Counts the starts: a watch of an earlier one tells nothing more. */
  #generation = 0
  #closed = false

  constructor(options: FoxgloveOptions) {
    this.#options = options
    this.#server = new FoxgloveServer({
      name: 'fleet-telemetry',
      capabilities: [],
      supportedEncodings: ['json'],
      metadata: { frame: 'fleet', docs: 'docs/robotics.md' },
    })
    this.#scene = this.#server.addChannel(channel(SCENE_TOPIC, SCENE_SCHEMA))
    this.#server.on('subscribe', (id) => this.#subscribedTo(id))
    this.#server.on('unsubscribe', (id) => this.#unsubscribedFrom(id))
    this.#server.on('error', (error) =>
      options.logger.debug({ err: error }, 'foxglove client message refused'),
    )
    this.#wss = new WebSocketServer({
      noServer: true,
      // Subscribe requests list channel ids: a megabyte is 30,000 of them.
      maxPayload: 1024 * 1024,
      perMessageDeflate: false,
      handleProtocols: (protocols) => this.#server.handleProtocols(protocols),
    })
    this.#keepalive =
      options.keepaliveMs > 0
        ? setInterval(() => this.#ping(), options.keepaliveMs).unref()
        : undefined
  }

  /** Clients open now. */
  get clients(): number {
    return this.#connections.size
  }

  /** Takes over an HTTP upgrade to {@link FOXGLOVE_PATH}. */
  handleUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const options = this.#options
    const remote = request.socket.remoteAddress
    if (this.#closed) {
      return refuse(socket, 'UNAVAILABLE', 'the server is shutting down')
    }
    let identity: Identity | undefined
    if (options.access !== undefined) {
      const checked = checkUpgrade(options.access, request, 'read')
      if (isRefused(checked)) {
        options.onRefused?.(checked, remote)
        return socket.end(refusedUpgradeAnswer(checked))
      }
      identity = checked
    }
    const offered = (request.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((protocol) => protocol.trim())
    if (!offered.includes(FoxgloveServer.SUPPORTED_SUBPROTOCOL)) {
      return refuse(
        socket,
        'BAD_REQUEST',
        `${FOXGLOVE_PATH} speaks the ${FoxgloveServer.SUPPORTED_SUBPROTOCOL} subprotocol (Sec-WebSocket-Protocol)`,
      )
    }
    if (this.#connections.size + this.#handshaking >= options.maxClients) {
      options.metrics?.refused.inc()
      return refuse(
        socket,
        'TOO_MANY_STREAMS',
        `${options.maxClients} Foxglove clients are connected, the most this server allows (--max-live-streams)`,
      )
    }
    this.#handshaking++
    let counted = true
    const handshakeDone = () => {
      if (counted) this.#handshaking--
      counted = false
    }
    socket.once('close', handshakeDone)
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      handshakeDone()
      socket.off('close', handshakeDone)
      const name = `${remote}:${request.socket.remotePort}`
      const connection = new Connection(ws, name, this, options.maxBufferBytes)
      connection.identity = identity
      this.#open(connection)
    })
  }

  #open(connection: Connection) {
    const { ws } = connection
    const log = this.#options.logger
    this.#connections.add(connection)
    this.#options.metrics?.clients.set(this.#connections.size)
    let handed = false
    ws.on('pong', () => (connection.alive = true))
    ws.on('error', (error) =>
      log.debug(
        { err: error, client: connection.name },
        'foxglove client error',
      ),
    )
    ws.on('message', (data, isBinary) => {
      if (handed) this.#received(connection, data, isBinary)
    })
    ws.on('close', (code, reason) => {
      this.#connections.delete(connection)
      this.#options.metrics?.clients.set(this.#connections.size)
      log.info({ client: connection.name, code }, 'foxglove client left')
      if (handed) {
        connection.onclose?.({
          code,
          reason: reason.toString(),
          wasClean: true,
        })
      }
      if (this.#connections.size === 0) this.#stop()
    })
    // The client learns the channels once every robot is known: it is
    // handed to the protocol server after the start.
    this.#start().then(
      () => {
        if (ws.readyState !== WebSocket.OPEN) return
        handed = true
        this.#server.handleConnection(connection, connection.name)
        log.info({ client: connection.name }, 'foxglove client connected')
      },
      (error: unknown) => {
        log.error({ err: error }, 'foxglove endpoint failed to start')
        ws.close(1011, 'the store cannot be watched')
      },
    )
  }

  /** A message from a client, for the protocol server. */
  #received(connection: Connection, data: RawData, isBinary: boolean) {
    if (isBinary) {
      const buffer = Buffer.concat(
        Array.isArray(data) ? data : [Buffer.from(data as ArrayBuffer)],
      )
      connection.onmessage?.({
        data: buffer.buffer.slice(
          buffer.byteOffset,
          buffer.byteOffset + buffer.byteLength,
        ),
      })
      return
    }
    const text = data.toString()
    connection.onmessage?.({ data: text })
    // Every new subscription to the scene (the protocol server tells only
    // of the first one) gets every robot at the next update.
    if (text.includes(`"channelId":${this.#scene}`)) {
      try {
        const message = JSON.parse(text) as {
          op?: string
          subscriptions?: { channelId?: unknown }[]
        }
        if (
          message.op === 'subscribe' &&
          message.subscriptions?.some((s) => s.channelId === this.#scene)
        ) {
          this.#sceneAll = true
        }
      } catch {
        // Told to the client by the protocol server already.
      }
    }
  }

  // --- watching ---

  /** Watches commits, then reads every robot; once while clients are open. */
  #start(): Promise<Unwatch> {
    if (this.#started !== undefined) return this.#started
    const generation = ++this.#generation
    const current = () => generation === this.#generation
    const started = (async () => {
      const unwatch = await this.#options.commits.watch({
        committed: (events) => current() && this.#committed(events),
        missed: () => current() && this.#missed(),
      })
      try {
        await this.#readRobots()
      } catch (error) {
        unwatch()
        throw error
      }
      return unwatch
    })()
    this.#started = started
    started.catch(() => {
      if (this.#started === started) this.#started = undefined
    })
    return started
  }

  #stop() {
    const started = this.#started
    this.#started = undefined
    this.#generation++
    started?.then((unwatch) => unwatch()).catch(() => {})
    // Positions go stale while nobody watches: read again at the next start.
    for (const robot of this.#robots.values()) robot.latest = undefined
    this.#moved.clear()
  }

  /**
   * Every robot of the store, with its latest position unless a commit
   * told a newer one meanwhile (commits are watched before this reads).
   */
  async #readRobots() {
    let after: string | undefined
    for (;;) {
      const robots = await this.#options.store.listRobots({
        after,
        limit: ROBOTS_PAGE,
      })
      for (const robot of robots) {
        const channels = this.#channelsOf(robot.name)
        if (
          channels.latest === undefined ||
          channels.latest.timestamp < robot.lastTimestamp
        ) {
          channels.latest = latestEvent(robot)
        }
      }
      if (robots.length < ROBOTS_PAGE) return
      after = robots.at(-1)!.name
    }
  }

  /** A robot's channels, advertised to every client the first time. */
  #channelsOf(robot: string): RobotChannels {
    let channels = this.#robots.get(robot)
    if (channels === undefined) {
      channels = {
        pose: this.#server.addChannel(
          channel(poseTopic(robot), JSON_PROFILE.pose),
        ),
        odometer: this.#server.addChannel(
          channel(odometerTopic(robot), JSON_PROFILE.odometer),
        ),
        latest: undefined,
      }
      this.#robots.set(robot, channels)
    }
    return channels
  }

  #committed(events: readonly StoredEvent[]) {
    const scene = this.#tick !== undefined
    for (const event of events) {
      const channels = this.#channelsOf(event.robot)
      // Commits come in commit order: the last one told is the latest,
      // even for a robot deleted and started again.
      channels.latest = event
      if (scene) this.#moved.add(event.robot)
      if (this.#subscribed.has(channels.pose)) {
        this.#send(channels.pose, event.timestamp, poseJson(event))
      }
      if (this.#subscribed.has(channels.odometer)) {
        this.#send(channels.odometer, event.timestamp, odometerJson(event))
      }
    }
  }

  /**
   * Commits went by unheard (the database connection was lost and is
   * back): what was missed is gone for a live view, but the positions and
   * the robots are read again, and the scene sends every robot.
   */
  #missed() {
    this.#options.metrics?.missed.inc()
    this.#sceneAll = true
    this.#readRobots().catch((error: unknown) =>
      this.#options.logger.error(
        { err: error },
        'foxglove endpoint could not read the robots again',
      ),
    )
  }

  #send(id: ChannelId, timestamp: number, json: string) {
    this.#server.sendMessage(id, logTime(timestamp), Buffer.from(json))
  }

  // --- the scene ---

  #subscribedTo(id: ChannelId) {
    this.#subscribed.add(id)
    if (id === this.#scene) {
      this.#sceneAll = true
      this.#tick ??= setInterval(
        () => this.#sendScene(),
        1000 / this.#options.hz,
      )
    }
  }

  #unsubscribedFrom(id: ChannelId) {
    this.#subscribed.delete(id)
    if (id === this.#scene) {
      clearInterval(this.#tick)
      this.#tick = undefined
      this.#moved.clear()
    }
  }

  /** One scene update: every robot that moved, or every robot. */
  #sendScene() {
    const latest: StoredEvent[] = []
    if (this.#sceneAll) {
      for (const channels of this.#robots.values()) {
        if (channels.latest !== undefined) latest.push(channels.latest)
      }
    } else {
      for (const robot of this.#moved) {
        const event = this.#robots.get(robot)?.latest
        if (event !== undefined) latest.push(event)
      }
    }
    this.#sceneAll = false
    this.#moved.clear()
    if (latest.length === 0) return
    let newest = 0
    for (const event of latest) newest = Math.max(newest, event.timestamp)
    this.#send(this.#scene, newest, sceneJson(latest))
  }

  // --- slow clients ---

  /** A message was not sent to `connection`: too much is unsent. */
  dropped(connection: Connection) {
    this.#options.metrics?.dropped.inc()
    if (connection.dropping) return
    connection.dropping = true
    this.#server.sendStatus(
      {
        level: StatusLevel.WARNING,
        message: `messages are dropped: more than ${this.#options.maxBufferBytes} bytes to this client are unsent (--live-buffer-bytes)`,
        id: DROPPING_STATUS,
      },
      connection,
    )
  }

  /** `connection` takes messages again. */
  caughtUp(connection: Connection) {
    connection.dropping = false
    this.#server.removeStatus([DROPPING_STATUS], connection)
  }

  /** `connection` lets even control messages pile up: it is closed. */
  tooSlow(connection: Connection) {
    this.#options.metrics?.disconnected.inc()
    this.#options.logger.warn(
      { client: connection.name, unsent: connection.ws.bufferedAmount },
      'foxglove client closed: it does not read what it is sent',
    )
    connection.ws.terminate()
  }

  #ping() {
    for (const connection of this.#connections) {
      if (!connection.alive) {
        this.#options.logger.info(
          { client: connection.name },
          'foxglove client closed: no pong within the keepalive period',
        )
        connection.ws.terminate()
        continue
      }
      connection.alive = false
      connection.ws.ping()
    }
  }

  // --- access and shutdown ---

  /** Closes the clients whose token the re-read tokens file no longer grants `read`. */
  revoke(): void {
    const access = this.#options.access
    if (access === undefined) return
    for (const connection of this.#connections) {
      const before = connection.identity
      if (before === undefined) continue
      const now = access.current(before, 'read')
      if (now === undefined) {
        this.#options.logger.warn(
          { client: connection.name, token: before.name },
          'foxglove client closed: its token was revoked',
        )
        connection.ws.close(1008, 'token revoked')
      } else {
        connection.identity = now
      }
    }
  }

  /** Closes every client (1001) and stops watching. */
  close(): void {
    this.#closed = true
    clearInterval(this.#keepalive)
    clearInterval(this.#tick)
    this.#tick = undefined
    for (const connection of this.#connections) connection.close()
    this.#wss.close()
    this.#stop()
  }
}

function refuse(socket: Duplex, code: ErrorCode, message: string) {
  socket.end(rawHttpError(new TelemetryError(code, { message })))
}

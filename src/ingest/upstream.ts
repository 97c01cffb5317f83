/**
 * The ingest endpoint `ws://HOST:PORT/upstream`: where an event enters.
 *
 * frame -> {@link splitFrame} -> {@link parseEventLine} -> batcher -> store
 * -> one reply frame per input frame, in the order the frames came.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { isMalformed, parseEventLine } from '../domain/event.ts'
import type { Outcome } from '../domain/rules.ts'
import { rawHttpError, TelemetryError, type ErrorCode } from '../errors.ts'
import type { Metrics } from '../metrics.ts'
import type { Batcher, BatchTarget } from './batcher.ts'
import {
  BINARY_FRAME_REPLY,
  OUTCOME_REPLIES,
  errorReply,
  splitFrame,
} from './frame.ts'

/** The path of the ingest endpoint. */
export const UPSTREAM_PATH = '/upstream'

/** Options of {@link createUpstream}. */
export interface UpstreamOptions {
  readonly batcher: Batcher
  readonly logger: Logger
  readonly metrics: Metrics
  /** Largest frame in bytes; a larger one closes the connection with 1009. */
  readonly maxFrameBytes: number
  /** Most lines in a frame; one with more closes the connection with 1009. */
  readonly maxLinesPerFrame: number
  /** Most open connections; an upgrade over it is answered 503. */
  readonly maxConnections: number
  /** Unanswered frames of a connection before it is no longer read. */
  readonly maxFramesInFlight: number
  /** Ping period; a connection that missed the previous pong is closed. 0: never. */
  readonly keepaliveMs: number
}

/** The ingest endpoint, fed by the HTTP server's `upgrade` events. */
export interface Upstream {
  /** Takes over an HTTP upgrade request. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void
  /** Open connections. */
  readonly connections: number
  /**
   * Refuses new connections, stops reading, answers every frame already
   * received once its events have committed, then closes every connection
   * with 1001.
   */
  close(): Promise<void>
}

/**
 * Creates the ingest endpoint.
 *
 * @example
 * const upstream = createUpstream({ batcher, logger, maxFrameBytes: 1 << 20 })
 * httpServer.on('upgrade', upstream.handleUpgrade)
 */
export function createUpstream(options: UpstreamOptions): Upstream {
  const { batcher, logger, metrics } = options
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxFrameBytes,
    // Invalid UTF-8 is answered line by line (frame.ts) instead of failing
    // the connection as RFC 6455 §8.1 would.
    skipUTF8Validation: true,
    perMessageDeflate: false,
  })
  const open = new Set<UpstreamConnection>()
  let closing = false
  let nextId = 1
  /** Upgrades accepted and not yet open, counted against the limit. */
  let handshaking = 0
  const limits: ConnectionLimits = {
    maxFrameBytes: options.maxFrameBytes,
    maxLinesPerFrame: options.maxLinesPerFrame,
    maxFramesInFlight: options.maxFramesInFlight,
  }
  const keepalive =
    options.keepaliveMs > 0
      ? setInterval(() => {
          for (const connection of open) connection.keepalive()
        }, options.keepaliveMs).unref()
      : undefined

  function handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ) {
    const path = (request.url ?? '').split('?', 1)[0]
    if (path !== UPSTREAM_PATH) {
      return refuse(
        socket,
        'ROUTE_NOT_FOUND',
        `no WebSocket endpoint at ${path}`,
      )
    }
    if (closing) {
      return refuse(socket, 'UNAVAILABLE', 'the server is shutting down')
    }
    if (open.size + handshaking >= options.maxConnections) {
      metrics.connectionsRefused.inc()
      logger.warn(
        { remote: request.socket.remoteAddress, open: open.size },
        'connection refused: too many connections',
      )
      return refuse(
        socket,
        'TOO_MANY_CONNECTIONS',
        `the server already has ${options.maxConnections} ingest connections`,
      )
    }
    handshaking++
    let counted = true
    const handshakeDone = () => {
      if (counted) handshaking--
      counted = false
    }
    socket.once('close', handshakeDone)
    wss.handleUpgrade(request, socket, head, (ws) => {
      handshakeDone()
      socket.off('close', handshakeDone)
      const id = nextId++
      const log = logger.child({
        connection: id,
        remote: request.socket.remoteAddress,
      })
      const connection = new UpstreamConnection(
        ws,
        socket,
        batcher,
        limits,
        log,
        metrics,
      )
      open.add(connection)
      metrics.connectionsOpen.inc()
      log.info('connection opened')
      ws.on('message', (data, isBinary) => connection.receive(data, isBinary))
      // Errors of the peer's frames (ws's receiver): a client's fault, told
      // in one line without ws's stack.
      ws.on('error', (error: Error & { code?: string }) => {
        if (error.code === FRAME_TOO_LARGE) {
          log.warn(
            { maxFrameBytes: options.maxFrameBytes },
            'frame over the size limit',
          )
        } else {
          log.warn(
            { code: error.code, reason: error.message },
            'connection error',
          )
        }
      })
      ws.on('close', (code) => {
        open.delete(connection)
        metrics.connectionsOpen.dec()
        // The code this server closed with, when it did: after an oversized
        // frame the peer's answering close frame is never read, and ws
        // would say 1006.
        log.info(
          { code: connection.closedWith ?? code, frames: connection.frames },
          'connection closed',
        )
      })
    })
  }

  async function close() {
    closing = true
    clearInterval(keepalive)
    for (const connection of open) connection.stopReading()
    await batcher.drain()
    await Promise.all(
      [...open].map((c) => c.close(1001, 'server shutting down')),
    )
  }

  return {
    handleUpgrade,
    get connections() {
      return open.size
    },
    close,
  }
}

/** Answers a refused upgrade with an HTTP error and the catalog's JSON body. */
function refuse(socket: Duplex, code: ErrorCode, message: string) {
  socket.end(rawHttpError(new TelemetryError(code, { message })))
}

// --- one connection ---

/** A received frame waiting for the commit of its events. */
interface PendingFrame {
  /** One reply per input line; event lines are filled after the commit. */
  readonly replies: string[]
  /** Indexes of the lines that are events, in order. */
  readonly eventLines: number[]
  /** How many of `eventLines` have been settled. */
  settledCount: number
  /** `performance.now()` when the frame arrived. */
  readonly receivedAt: number
}

const UNAVAILABLE_REPLY = errorReply('UNAVAILABLE')

/**
 * Backpressure: a connection stops being read while this many of its frames
 * are unanswered, or this many bytes of replies wait to be sent (a client
 * that does not read its replies). Memory per connection stays bounded, and
 * what a client sends meanwhile waits in its own socket buffers.
 */
export const MAX_BUFFERED_REPLY_BYTES = 8 * 1024 * 1024

/** The code of ws's error for a frame over `maxPayload`. */
const FRAME_TOO_LARGE = 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'

/** The per-connection limits of {@link UpstreamOptions}. */
interface ConnectionLimits {
  readonly maxFrameBytes: number
  readonly maxLinesPerFrame: number
  readonly maxFramesInFlight: number
}

class UpstreamConnection implements BatchTarget<PendingFrame> {
  readonly #ws: WebSocket
  readonly #socket: Duplex
  readonly #batcher: Batcher
  /** Frames received and not yet answered, oldest first. */
  readonly #queue: PendingFrame[] = []
  #closing = false
  /** Shutdown stopped reading for good. */
  #stopped = false
  /** Reading is paused by backpressure. */
  #throttled = false
  /** Set when a frame broke a limit: close with it once the rest is answered. */
  #closeWhenAnswered: { code: number; reason: string } | undefined
  /** Whether the peer showed life since the last ping. */
  #alive = true
  readonly #limits: ConnectionLimits
  readonly #log: Logger
  readonly #metrics: Metrics
  frames = 0
  /** The close code this server sent, once it closed the connection. */
  closedWith: number | undefined

  constructor(
    ws: WebSocket,
    socket: Duplex,
    batcher: Batcher,
    limits: ConnectionLimits,
    log: Logger,
    metrics: Metrics,
  ) {
    this.#metrics = metrics
    this.#ws = ws
    this.#socket = socket
    this.#batcher = batcher
    this.#limits = limits
    this.#log = log
    socket.on('drain', () => this.#applyBackpressure())
    ws.on('pong', () => (this.#alive = true))
    this.#answerBeforeOversizeClose()
  }

  /**
   * ws closes the connection itself, with 1009, as soon as a frame's header
   * says it is over `maxPayload`, and reads nothing more (`receiverOnError`
   * in ws's lib/websocket.js), often before the frames read before it have
   * been answered. Like a frame over the lines limit, those frames are
   * answered first, once their events are committed, and the connection is
   * closed after them.
   *
   * That call is told apart by its missing reason: ws answers a peer's own
   * close frame with the peer's reason (a Buffer, `receiverOnConclude`),
   * and this server always gives one.
   */
  #answerBeforeOversizeClose() {
    const ws = this.#ws
    const closeNow = ws.close.bind(ws)
    ws.close = (code?: number, reason?: string | Buffer) => {
      if (code !== 1009 || reason !== undefined || this.#closing) {
        return closeNow(code, reason)
      }
      // A frame over the lines limit may already have asked for a close:
      // its reason stands, and the frames before it are still answered.
      this.#closeWhenAnswered ??= {
        code,
        reason: `frame is larger than ${this.#limits.maxFrameBytes} bytes`,
      }
      this.stopReading()
      this.#closeIfAnswered()
    }
  }

  /** Called every keepalive period: pings, or closes a peer that never answered. */
  keepalive() {
    if (this.#closing) return
    if (!this.#alive) {
      this.#log.info('connection closed: no pong within the keepalive period')
      this.#ws.terminate()
      return
    }
    this.#alive = false
    this.#ws.ping()
  }

  /** Pauses reading over the limits, resumes once under half of them. */
  #applyBackpressure() {
    if (this.#stopped) return
    const frames = this.#queue.length
    const bytes = this.#ws.bufferedAmount
    const maxFrames = this.#limits.maxFramesInFlight
    if (!this.#throttled) {
      if (frames >= maxFrames || bytes >= MAX_BUFFERED_REPLY_BYTES) {
        this.#throttled = true
        this.#ws.pause()
      }
    } else if (frames < maxFrames / 2 && bytes < MAX_BUFFERED_REPLY_BYTES / 2) {
      this.#throttled = false
      this.#ws.resume()
    }
  }

  receive(data: RawData, isBinary: boolean) {
    // Frames that race the close frame are dropped unanswered: nothing of
    // them was stored, and the client resends them elsewhere.
    if (this.#closing || this.#closeWhenAnswered !== undefined) return
    this.#alive = true
    this.frames++
    const receivedAt = performance.now()
    const metrics = this.#metrics
    if (isBinary) {
      metrics.linesReceived.inc()
      metrics.replies.malformed.inc()
      this.#queue.push({
        replies: [BINARY_FRAME_REPLY],
        eventLines: [],
        settledCount: 0,
        receivedAt,
      })
      this.settled()
      this.#applyBackpressure()
      return
    }
    const lines = splitFrame(data as Buffer)
    if (lines.length > this.#limits.maxLinesPerFrame) {
      // Like a frame over the size limit, but the frames before it are
      // still answered: nothing of this one is stored.
      this.#log.warn(
        { lines: lines.length },
        'frame over the lines-per-frame limit',
      )
      this.#closeWhenAnswered = {
        code: 1009,
        reason: `frame has more than ${this.#limits.maxLinesPerFrame} lines`,
      }
      this.stopReading()
      this.#closeIfAnswered()
      return
    }
    // Counted once the frame is taken: a frame over a limit is not read.
    metrics.linesReceived.inc(lines.length)
    const frame: PendingFrame = {
      replies: new Array(lines.length),
      eventLines: [],
      settledCount: 0,
      receivedAt,
    }
    this.#queue.push(frame)
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!
      if (typeof line !== 'string') {
        frame.replies[i] = line.reply
        continue
      }
      const parsed = parseEventLine(line)
      if (isMalformed(parsed)) {
        frame.replies[i] = errorReply('MALFORMED', parsed.error)
        continue
      }
      frame.eventLines.push(i)
      this.#batcher.add(parsed, this, frame)
    }
    const malformed = lines.length - frame.eventLines.length
    if (malformed > 0) metrics.replies.malformed.inc(malformed)
    if (frame.eventLines.length === 0) this.settled()
    this.#applyBackpressure()
  }

  settle(frame: PendingFrame, outcome: Outcome | undefined) {
    const line = frame.eventLines[frame.settledCount++]!
    frame.replies[line] =
      outcome === undefined ? UNAVAILABLE_REPLY : OUTCOME_REPLIES[outcome]
    this.#metrics.replies[outcome ?? 'unavailable'].inc()
  }

  /** Sends every answered frame at the head of the queue, in one write. */
  settled() {
    const queue = this.#queue
    const ready = (f: PendingFrame | undefined) =>
      f !== undefined && f.settledCount === f.eventLines.length
    if (!ready(queue[0])) return
    const open = this.#ws.readyState === this.#ws.OPEN
    if (open) this.#socket.cork()
    const now = performance.now()
    const ack = this.#metrics.ackSeconds
    while (ready(queue[0])) {
      const frame = queue.shift()!
      if (open) this.#ws.send(frame.replies.join('\n'))
      ack.observe((now - frame.receivedAt) / 1000)
    }
    if (open) this.#socket.uncork()
    this.#applyBackpressure()
    this.#closeIfAnswered()
  }

  #closeIfAnswered() {
    const limit = this.#closeWhenAnswered
    if (limit === undefined || this.#queue.length > 0) return
    void this.close(limit.code, limit.reason)
  }

  stopReading() {
    // ws.pause(), not the socket's: ws resumes its socket on drain unless
    // the WebSocket itself is paused.
    this.#stopped = true
    this.#ws.pause()
  }

  close(code: number, reason: string): Promise<void> {
    const ws = this.#ws
    this.#closing = true
    if (ws.readyState === ws.CLOSED) return Promise.resolve()
    if (ws.readyState === ws.OPEN) this.closedWith ??= code
    // Read again, to see the peer's close frame.
    this.#ws.resume()
    return new Promise((resolve) => {
      // A peer that never answers the close frame is cut off.
      const timer = setTimeout(() => ws.terminate(), 2000)
      ws.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      ws.close(code, reason)
    })
  }
}

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
  /** Largest frame in bytes; a larger one closes the connection with 1009. */
  readonly maxFrameBytes: number
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
  const { batcher, logger } = options
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
    wss.handleUpgrade(request, socket, head, (ws) => {
      const id = nextId++
      const log = logger.child({
        connection: id,
        remote: request.socket.remoteAddress,
      })
      const connection = new UpstreamConnection(ws, socket, batcher)
      open.add(connection)
      log.info('connection opened')
      ws.on('message', (data, isBinary) => connection.receive(data, isBinary))
      ws.on('error', (error) => log.warn({ err: error }, 'connection error'))
      ws.on('close', (code) => {
        open.delete(connection)
        log.info({ code, frames: connection.frames }, 'connection closed')
      })
    })
  }

  async function close() {
    closing = true
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
}

const UNAVAILABLE_REPLY = errorReply('UNAVAILABLE')

/**
 * Backpressure: a connection stops being read while this many of its frames
 * are unanswered, or this many bytes of replies wait to be sent (a client
 * that does not read its replies). Memory per connection stays bounded, and
 * what a client sends meanwhile waits in its own socket buffers.
 */
export const MAX_FRAMES_IN_FLIGHT = 1024
export const MAX_BUFFERED_REPLY_BYTES = 8 * 1024 * 1024

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
  frames = 0

  constructor(ws: WebSocket, socket: Duplex, batcher: Batcher) {
    this.#ws = ws
    this.#socket = socket
    this.#batcher = batcher
    socket.on('drain', () => this.#applyBackpressure())
  }

  /** Pauses reading over the limits, resumes once under half of them. */
  #applyBackpressure() {
    if (this.#stopped) return
    const frames = this.#queue.length
    const bytes = this.#ws.bufferedAmount
    if (!this.#throttled) {
      if (frames >= MAX_FRAMES_IN_FLIGHT || bytes >= MAX_BUFFERED_REPLY_BYTES) {
        this.#throttled = true
        this.#ws.pause()
      }
    } else if (
      frames < MAX_FRAMES_IN_FLIGHT / 2 &&
      bytes < MAX_BUFFERED_REPLY_BYTES / 2
    ) {
      this.#throttled = false
      this.#ws.resume()
    }
  }

  receive(data: RawData, isBinary: boolean) {
    // Frames that race the close frame are dropped unanswered: nothing of
    // them was stored, and the client resends them elsewhere.
    if (this.#closing) return
    this.frames++
    if (isBinary) {
      this.#queue.push({
        replies: [BINARY_FRAME_REPLY],
        eventLines: [],
        settledCount: 0,
      })
      this.settled()
      this.#applyBackpressure()
      return
    }
    const lines = splitFrame(data as Buffer)
    const frame: PendingFrame = {
      replies: new Array(lines.length),
      eventLines: [],
      settledCount: 0,
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
    if (frame.eventLines.length === 0) this.settled()
    this.#applyBackpressure()
  }

  settle(frame: PendingFrame, outcome: Outcome | undefined) {
    const line = frame.eventLines[frame.settledCount++]!
    frame.replies[line] =
      outcome === undefined ? UNAVAILABLE_REPLY : OUTCOME_REPLIES[outcome]
  }

  /** Sends every answered frame at the head of the queue, in one write. */
  settled() {
    const queue = this.#queue
    const ready = (f: PendingFrame | undefined) =>
      f !== undefined && f.settledCount === f.eventLines.length
    if (!ready(queue[0])) return
    const open = this.#ws.readyState === this.#ws.OPEN
    if (open) this.#socket.cork()
    while (ready(queue[0])) {
      const frame = queue.shift()!
      if (open) this.#ws.send(frame.replies.join('\n'))
    }
    if (open) this.#socket.uncork()
    this.#applyBackpressure()
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

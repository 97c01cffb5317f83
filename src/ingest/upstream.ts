/**
 * The ingest endpoint `ws://HOST:PORT/upstream`: where an event enters.
 *
 * frame -> {@link splitFrame} -> {@link parseEventAt} (each line, in place) -> batcher -> store
 * -> one reply frame per input frame, in the order the frames came.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import {
  checkUpgrade,
  isRefused,
  refusedUpgradeAnswer,
  type Access,
  type Refused,
} from '../auth/access.ts'
import type { TokenBuckets } from '../auth/rate.ts'
import type { Identity } from '../auth/tokens.ts'
import { isMalformed, type TelemetryEvent } from '../domain/event.ts'
import { OUTCOMES, type Outcome } from '../domain/rules.ts'
import { rawHttpError, TelemetryError, type ErrorCode } from '../errors.ts'
import type { Increment, Metrics, PauseReason } from '../metrics.ts'
import type { Batcher, BatchTarget, EventSource } from './batcher.ts'
import {
  LINE_COST_BYTES,
  type BudgetMember,
  type InflightBudget,
} from './budget.ts'
import {
  BINARY_FRAME_REPLY,
  OUTCOME_REPLIES,
  errorReply,
  textFrames,
  splitFrame,
  type FrameLines,
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
  /** Bytes a connection holds (budget.ts) before it is no longer read. */
  readonly maxConnectionInflightBytes: number
  /** The server-wide budget every connection holds its bytes against. */
  readonly budget: InflightBudget
  /** Ping period; a connection that missed the previous pong is closed. 0: never. */
  readonly keepaliveMs: number
  /** Access control; none when the server has no tokens file. */
  readonly access?: Access
  /** Most open connections of one token; 0: no limit. */
  readonly maxTokenConnections?: number
  /** The events a second of each token; none: no limit. */
  readonly eventRate?: TokenBuckets
  /** Tells of a refused token: counted and logged by the server. */
  readonly onRefused?: (refused: Refused, remote: string | undefined) => void
}

/** The ingest endpoint, fed by the HTTP server's `upgrade` events. */
export interface Upstream {
  /** Takes over an HTTP upgrade request. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void
  /** Open connections. */
  readonly connections: number
  /**
   * Applies the tokens file as re-read: connections of a token it no
   * longer holds are closed with 1008, the others take its new scope.
   */
  revoke(): void
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
  /** Connections open or handshaking, by token name. */
  const perToken = new Map<string, number>()
  let closing = false
  let nextId = 1
  /** Upgrades accepted and not yet open, counted against the limit. */
  let handshaking = 0
  const limits: ConnectionLimits = {
    maxFrameBytes: options.maxFrameBytes,
    maxLinesPerFrame: options.maxLinesPerFrame,
    maxFramesInFlight: options.maxFramesInFlight,
    maxConnectionInflightBytes: options.maxConnectionInflightBytes,
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
    let identity: Identity | undefined
    if (options.access !== undefined) {
      const checked = checkUpgrade(options.access, request, 'ingest')
      if (isRefused(checked)) {
        options.onRefused?.(checked, request.socket.remoteAddress)
        return socket.end(refusedUpgradeAnswer(checked))
      }
      identity = checked
      const limit = options.maxTokenConnections ?? 0
      if (limit > 0 && (perToken.get(identity.name) ?? 0) >= limit) {
        metrics.tokenLimited.connections.inc()
        logger.warn(
          { token: identity.name, remote: request.socket.remoteAddress },
          'connection refused: too many connections of this token',
        )
        return refuse(
          socket,
          'TOO_MANY_REQUESTS',
          `token "${identity.name}" already has ${limit} ingest connections`,
        )
      }
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
    const token = identity?.name
    if (token !== undefined) perToken.set(token, (perToken.get(token) ?? 0) + 1)
    let counted = true
    const handshakeDone = () => {
      if (counted) handshaking--
      counted = false
    }
    const tokenGone = () => {
      if (token === undefined) return
      const left = perToken.get(token)! - 1
      if (left === 0) perToken.delete(token)
      else perToken.set(token, left)
    }
    socket.once('close', tokenGone)
    socket.once('close', handshakeDone)
    wss.handleUpgrade(request, socket, head, (ws) => {
      handshakeDone()
      socket.off('close', handshakeDone)
      const id = nextId++
      const log = logger.child({
        connection: id,
        remote: request.socket.remoteAddress,
        ...(token === undefined ? {} : { token }),
      })
      const connection = new UpstreamConnection(
        ws,
        socket,
        batcher,
        options.budget,
        limits,
        log,
        metrics,
      )
      if (identity !== undefined) {
        connection.identify(identity, options.eventRate)
      }
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
        connection.gone()
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

  function revoke() {
    const access = options.access
    if (access === undefined) return
    for (const connection of open) {
      const before = connection.identity
      if (before === undefined) continue
      const now = access.current(before, 'ingest')
      if (now === undefined) {
        connection.log.warn('connection closed: its token was revoked')
        void connection.close(1008, 'token revoked')
      } else {
        connection.identify(now, options.eventRate)
      }
    }
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
    revoke,
    close,
  }
}

/** Answers a refused upgrade with an HTTP error and the catalog's JSON body. */
function refuse(socket: Duplex, code: ErrorCode, message: string) {
  socket.end(rawHttpError(new TelemetryError(code, { message })))
}

// --- one connection ---

/**
 * A received frame waiting for the commit of its events. Its lines are
 * cut and parsed when the batcher reads them (batcher.ts), not when it
 * arrives.
 */
class PendingFrame implements EventSource<PendingFrame> {
  readonly target: UpstreamConnection
  /** The lines, until all are read. */
  #lines: FrameLines | undefined
  /**
   * One reply per line, as a code (below), made on the first read: lines
   * that are not events as they are read, events as they settle (in order:
   * the next event to settle has the first line without a reply). A byte
   * a line, outside the collected heap, until the reply frame is written.
   */
  #replies: Uint8Array | undefined
  /** The replies of malformed lines, by line. */
  #malformedReplies: Map<number, string> | undefined
  /** Lines before this one all have their reply. */
  #repliedTo = 0
  /** Events read, and of those settled. */
  #events = 0
  #settled = 0
  /** `performance.now()` when the frame arrived. */
  readonly receivedAt: number
  /** What it holds of the budget until it is answered (budget.ts). */
  readonly cost: number
  readonly #malformed: Increment

  constructor(
    target: UpstreamConnection,
    lines: FrameLines | undefined,
    receivedAt: number,
    cost: number,
    malformed: Increment,
  ) {
    this.target = target
    this.#lines = lines
    this.receivedAt = receivedAt
    this.cost = cost
    this.#malformed = malformed
  }

  /** A frame answered at once, without being read. */
  static answered(
    target: UpstreamConnection,
    reply: string,
    receivedAt: number,
  ): PendingFrame {
    const frame = new PendingFrame(target, undefined, receivedAt, 0, {
      inc() {},
    })
    frame.#replies = new Uint8Array([MALFORMED])
    frame.#malformedReplies = new Map([[0, reply]])
    return frame
  }

  get remaining(): number {
    return this.#lines?.remaining ?? 0
  }

  /** Every line read, and every event among them settled. */
  get answered(): boolean {
    return this.remaining === 0 && this.#settled === this.#events
  }

  /** The reply frame, once {@link answered}. */
  reply(): string {
    const codes = this.#replies!
    const lines = new Array<string>(codes.length)
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i]!
      lines[i] =
        code === MALFORMED
          ? this.#malformedReplies!.get(i)!
          : REPLY_OF_CODE[code]!
    }
    return lines.join('\n')
  }

  #malformedAt(line: number, reply: string) {
    this.#replies![line] = MALFORMED
    ;(this.#malformedReplies ??= new Map()).set(line, reply)
  }

  read(
    max: number,
    push: (event: TelemetryEvent, slot: PendingFrame) => void,
  ): boolean {
    const lines = this.#lines!
    this.#replies ??= new Uint8Array(lines.count)
    let pushed = 0
    let malformed = 0
    while (lines.remaining > 0 && pushed < max) {
      const index = lines.count - lines.remaining
      const parsed = lines.nextEvent()
      if ('reply' in parsed) {
        this.#malformedAt(index, parsed.reply)
        malformed++
        continue
      }
      if (isMalformed(parsed)) {
        this.#malformedAt(index, errorReply('MALFORMED', parsed.error))
        malformed++
        continue
      }
      const refused = this.target.admit?.(parsed.robot)
      if (refused !== undefined && refused !== ADMITTED) {
        this.#replies[index] = refused
        continue
      }
      this.#events++
      push(parsed, this)
      pushed++
    }
    if (malformed > 0) this.#malformed.inc(malformed)
    if (lines.remaining > 0) return false
    // Read to its end: the text is no longer needed.
    this.#lines = undefined
    return true
  }

  /** Gives the next event of the frame its reply. */
  settle(outcome: Outcome | undefined) {
    const replies = this.#replies!
    let line = this.#repliedTo
    while (replies[line] !== UNANSWERED) line++
    replies[line] = outcome === undefined ? UNAVAILABLE : CODE_OF[outcome]
    this.#repliedTo = line + 1
    this.#settled++
  }
}

/** The reply codes of {@link PendingFrame}: a line without a reply yet, */
const UNANSWERED = 0
/** …the outcome of an event (its index in OUTCOMES, plus one), */
const CODE_OF: Readonly<Record<Outcome, number>> = Object.fromEntries(
  OUTCOMES.map((outcome, i) => [outcome, i + 1]),
) as Record<Outcome, number>
/** …an event whose commit failed, a line its token may not write, */
const UNAVAILABLE = OUTCOMES.length + 1
const FORBIDDEN = OUTCOMES.length + 2
const RATE_LIMITED = OUTCOMES.length + 3
/** …and a malformed line, whose reply is kept apart. */
const MALFORMED = OUTCOMES.length + 4
/** What {@link UpstreamConnection.admit} says of a line it lets through. */
const ADMITTED = UNANSWERED
/** The reply line of each code but MALFORMED. */
const REPLY_OF_CODE: readonly string[] = [
  '',
  ...OUTCOMES.map((outcome) => OUTCOME_REPLIES[outcome]),
  errorReply('UNAVAILABLE'),
  errorReply('FORBIDDEN', "the robot is outside this token's robots"),
  errorReply('RATE_LIMITED', "over this token's events per second"),
]

/** The code of ws's error for a frame over `maxPayload`. */
const FRAME_TOO_LARGE = 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'

/** The per-connection limits of {@link UpstreamOptions}. */
interface ConnectionLimits {
  readonly maxFrameBytes: number
  readonly maxLinesPerFrame: number
  readonly maxFramesInFlight: number
  readonly maxConnectionInflightBytes: number
}

/**
 * Backpressure: a connection stops being read while it is over its own
 * limits (unanswered frames, or bytes held: its unanswered frames and its
 * replies not yet written, as from a client that does not read them), or
 * while the server is over its budget and the connection holds at least its
 * share (budget.ts). What a client sends meanwhile waits in its socket.
 */
class UpstreamConnection implements BatchTarget<PendingFrame>, BudgetMember {
  readonly #ws: WebSocket
  readonly #socket: Duplex
  readonly #batcher: Batcher
  /** Frames received and not yet answered, oldest first. */
  readonly #queue: PendingFrame[] = []
  #closing = false
  /** Shutdown stopped reading for good. */
  #stopped = false
  /** Why reading is paused by backpressure, and since when. */
  #paused: { reason: PauseReason; since: number } | undefined
  readonly #budget: InflightBudget
  /** Bytes held against the budget: unanswered frames and unsent replies. */
  #held = 0
  /**
   * Of those, replies handed to the socket and not yet written out, as
   * last seen (`ws.bufferedAmount`): it only shrinks until looked at again.
   */
  #unsent = 0
  /** Set when a frame broke a limit: close with it once the rest is answered. */
  #closeWhenAnswered: { code: number; reason: string } | undefined
  /** Whether the peer showed life since the last ping. */
  #alive = true
  readonly #limits: ConnectionLimits
  readonly #log: Logger
  readonly #metrics: Metrics
  /** Events settled in the batch being answered, by outcome. */
  readonly #settledCounts = new Map<Outcome | undefined, number>()
  frames = 0
  /** The close code this server sent, once it closed the connection. */
  closedWith: number | undefined
  /** Who opened it, with access control on. */
  identity: Identity | undefined
  /**
   * Whether its token may write an event of `robot` now: {@link ADMITTED},
   * or the reply code of the line. Absent without access control.
   */
  admit: ((robot: string) => number) | undefined

  constructor(
    ws: WebSocket,
    socket: Duplex,
    batcher: Batcher,
    budget: InflightBudget,
    limits: ConnectionLimits,
    log: Logger,
    metrics: Metrics,
  ) {
    this.#metrics = metrics
    this.#ws = ws
    this.#socket = socket
    this.#batcher = batcher
    this.#budget = budget
    // The socket wrote all it held: its replies are no longer held.
    socket.on('drain', () => this.#countUnsent())
    this.#limits = limits
    this.#log = log
    budget.join(this)
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

  get log(): Logger {
    return this.#log
  }

  /** Sets (or, after the file was re-read, replaces) who opened the connection. */
  identify(identity: Identity, eventRate: TokenBuckets | undefined) {
    this.identity = identity
    const { name } = identity
    const replies = this.#metrics.replies
    this.admit = (robot) => {
      if (!identity.mayWrite(robot)) {
        replies.forbidden.inc()
        return FORBIDDEN
      }
      if (eventRate !== undefined && !eventRate.take(name, performance.now())) {
        replies.rate_limited.inc()
        return RATE_LIMITED
      }
      return ADMITTED
    }
  }

  /**
   * Called every keepalive period: pings, or closes a peer that never
   * answered. Not while the connection is not read (backpressure): its
   * pong could not be seen, and a commit that stalls longer than the period
   * would cut off live robots. It is judged again once it is read.
   */
  keepalive() {
    if (this.#closing) return
    if (this.#paused !== undefined) {
      this.#alive = true
      return
    }
    if (!this.#alive) {
      this.#log.info('connection closed: no pong within the keepalive period')
      this.#ws.terminate()
      return
    }
    this.#alive = false
    this.#ws.ping()
  }

  reconsider() {
    this.#applyBackpressure()
  }

  /**
   * Pauses reading over the limits; resumes once under half of the
   * connection's own limits and, while the server is over its budget,
   * under half of its share.
   */
  #applyBackpressure() {
    if (this.#stopped) return
    const frames = this.#queue.length
    const held = this.#held
    const { maxFramesInFlight, maxConnectionInflightBytes } = this.#limits
    const budget = this.#budget
    if (this.#paused === undefined) {
      const reason: PauseReason | undefined =
        frames >= maxFramesInFlight || held >= maxConnectionInflightBytes
          ? 'connection'
          : budget.over && (held >= budget.share || budget.full)
            ? 'server'
            : undefined
      if (reason === undefined) return
      this.#paused = { reason, since: performance.now() }
      this.#ws.pause()
    } else if (
      frames < maxFramesInFlight / 2 &&
      held < maxConnectionInflightBytes / 2 &&
      (!budget.over || (held < budget.share / 2 && !budget.full))
    ) {
      this.#countPause()
      this.#ws.resume()
    }
  }

  /** Ends a pause, adding its time to the metrics. */
  #countPause() {
    const paused = this.#paused
    if (paused === undefined) return
    this.#paused = undefined
    this.#metrics.pausedSeconds[paused.reason].inc(
      (performance.now() - paused.since) / 1000,
    )
  }

  #hold(bytes: number) {
    this.#held += bytes
    this.#budget.hold(bytes)
  }

  #release(bytes: number) {
    this.#held -= bytes
    this.#budget.release(bytes)
  }

  /**
   * The connection has closed: what its socket never wrote is let go of,
   * and it leaves the budget. Its unanswered frames still let go of theirs
   * as they are answered.
   */
  gone() {
    this.#release(this.#unsent)
    this.#unsent = 0
    this.#countPause()
    this.#budget.leave(this)
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
      this.#queue.push(
        PendingFrame.answered(this, BINARY_FRAME_REPLY, receivedAt),
      )
      this.settled()
      this.#applyBackpressure()
      return
    }
    const lines = splitFrame(data as Buffer)
    if (lines.count > this.#limits.maxLinesPerFrame) {
      // Like a frame over the size limit, but the frames before it are
      // still answered: nothing of this one is stored.
      this.#log.warn(
        { lines: lines.count },
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
    metrics.linesReceived.inc(lines.count)
    const frame = new PendingFrame(
      this,
      lines,
      receivedAt,
      (data as Buffer).length + lines.count * LINE_COST_BYTES,
      metrics.replies.malformed,
    )
    this.#queue.push(frame)
    this.#hold(frame.cost)
    this.#batcher.add(frame)
    this.#applyBackpressure()
  }

  settle(frame: PendingFrame, outcome: Outcome | undefined) {
    frame.settle(outcome)
    this.#settledCounts.set(
      outcome,
      (this.#settledCounts.get(outcome) ?? 0) + 1,
    )
  }

  /**
   * Sends every answered frame at the head of the queue, in one write, and
   * counts the replies the batch settled (one increment a kind, not an
   * event: a counter's increment cost 3 % of the main thread per event).
   */
  settled() {
    for (const [outcome, count] of this.#settledCounts) {
      this.#metrics.replies[outcome ?? 'unavailable'].inc(count)
    }
    this.#settledCounts.clear()
    const queue = this.#queue
    const ready = (f: PendingFrame | undefined) => f !== undefined && f.answered
    if (!ready(queue[0])) return
    const open = this.#ws.readyState === this.#ws.OPEN
    const now = performance.now()
    const ack = this.#metrics.ackSeconds
    const replies: string[] = []
    while (ready(queue[0])) {
      const frame = queue.shift()!
      this.#release(frame.cost)
      if (open) replies.push(frame.reply())
      ack.observe((now - frame.receivedAt) / 1000)
    }
    // One write of every reply frame, framed here rather than by ws.send
    // (a header buffer and a write request a reply: a third of the main
    // thread at one line a frame). ws writes its own frames (pings, the
    // close) to the socket at once, as this server never compresses, so
    // frames never interleave; ws.bufferedAmount counts these bytes too.
    if (replies.length > 0) this.#socket.write(textFrames(replies))
    this.#countUnsent()
    this.#closeIfAnswered()
  }

  /**
   * Holds the replies the socket has not written yet against the budget:
   * looked at after each write and when the socket drains, not with a
   * callback per reply (which cost 10 % of the events a second of one-line
   * frames).
   */
  #countUnsent() {
    if (this.#ws.readyState !== this.#ws.OPEN) return
    const unsent = this.#ws.bufferedAmount
    if (unsent > this.#unsent) this.#hold(unsent - this.#unsent)
    else if (unsent < this.#unsent) this.#release(this.#unsent - unsent)
    this.#unsent = unsent
    this.#applyBackpressure()
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

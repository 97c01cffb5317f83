/**
 * The robot side of the ingest protocol (docs/protocol.md), for Node and
 * for browsers: this module imports nothing of either. A client sends
 * events in order, pipelined, several lines per frame when it falls behind;
 * reconnects with backoff and jitter and resends, in their first order,
 * the events that have no final outcome yet; and tells each event's
 * outcome once. `connect` of ./node.ts or ./browser.ts builds one.
 *
 * How an event moves: `send` checks it with the server's own parser and
 * puts it at the end of `#pending` (and in the journal, when there is
 * one); `#pump` sends the oldest pending events as a frame and moves them
 * to `#frames`; the reply to the oldest frame settles each of its events:
 * final ones are done, retried ones (`unavailable`, `rate_limited`) wait in
 * `#retry` until every frame sent before is answered, then go back to the
 * front of `#pending`. A lost connection puts `#retry` and `#frames` back
 * in front of `#pending`, in that order, which is their first order.
 */
import { isMalformed, parseEventLine } from '../domain/event.ts'

/** An event as a program gives it. */
export interface EventInput {
  readonly robot: string
  readonly x: number
  readonly y: number
  /** An integer from 0 to 2^53−1; milliseconds since the epoch in practice. */
  readonly timestamp: number
}

/**
 * What became of an event, once and for all:
 * - `stored`: the server committed it (`OK`);
 * - `duplicate`: it was already stored (`DUP`), so it is delivered too;
 * - `stale`, `conflict`, `malformed`, `forbidden`: the server's (or, for
 *   `malformed`, the client's own) `ERR` code; never retried;
 * - `rejected`: any other `ERR` code, never retried;
 * - `dropped`: the buffer was full (`maxBuffered`, `overflow`);
 * - `unsent`: `close()` gave up on it (it stays in the journal, if any).
 */
export type OutcomeStatus =
  | 'stored'
  | 'duplicate'
  | 'stale'
  | 'conflict'
  | 'malformed'
  | 'forbidden'
  | 'rejected'
  | 'dropped'
  | 'unsent'

export interface Outcome {
  readonly status: OutcomeStatus
  /** The server's (or the client's) message, for `ERR` outcomes. */
  readonly message?: string
}

/** Whether an outcome means the event is in the store. */
export function delivered(outcome: Outcome): boolean {
  return outcome.status === 'stored' || outcome.status === 'duplicate'
}

/** The connection, as told to {@link ClientOptions.onStatus}. */
export interface ConnectionStatus {
  readonly state: 'connecting' | 'open' | 'waiting' | 'closed'
  /** Why the last connection ended or failed, when it did. */
  readonly error?: string
  /**
   * The HTTP status of a refused upgrade (401 without a valid token, 403
   * for a read token, 503 when the server is full), where the runtime
   * tells it: Node does, a browser does not.
   */
  readonly httpStatus?: number
  /** With `waiting`: how long until the next attempt. */
  readonly retryInMs?: number
}

/** Counts since the client was made. */
export interface ClientStats {
  /** Events given to `send` (and recovered from the journal). */
  readonly given: number
  readonly stored: number
  readonly duplicate: number
  /** Final outcomes other than stored and duplicate, dropped and unsent. */
  readonly failed: number
  readonly dropped: number
  /** Events without a final outcome yet: buffered or in flight. */
  readonly pending: number
  /** Lines sent again after a lost connection or a retried reply. */
  readonly resent: number
  /** Frames sent, and connections opened. */
  readonly frames: number
  readonly connections: number
  readonly connected: boolean
}

export interface ClientOptions {
  /** A token of role ingest or admin (docs/security.md). */
  readonly token?: string
  /** Binds the client to one robot: `send(x, y, timestamp)`. */
  readonly robot?: string
  /**
   * At most this many events without a final outcome (default 100,000):
   * past it, `overflow` says which event is dropped.
   */
  readonly maxBuffered?: number
  /**
   * `drop-oldest` (default): the oldest event not yet sent makes room, as
   * a robot's latest position matters most; `drop-newest`: the new event
   * is dropped. Either way its outcome is `dropped`.
   */
  readonly overflow?: 'drop-oldest' | 'drop-newest'
  /** Lines per frame at most (default 1,000). */
  readonly maxLinesPerFrame?: number
  /** Bytes per frame at most (default 256 KiB; the server's default limit is 1 MiB). */
  readonly maxFrameBytes?: number
  /** Frames sent and not yet answered, at most (default 32). */
  readonly maxFramesInFlight?: number
  /** First reconnect delay (default 100 ms); doubled each failure up to `maxBackoffMs`. */
  readonly backoffMs?: number
  /** Longest reconnect delay (default 10 s). */
  readonly maxBackoffMs?: number
  /**
   * A connection whose oldest frame has had no reply for this long is
   * given up and made again (default 30 s): a server that stopped, or a
   * network gone without a word, holds nothing for ever.
   */
  readonly replyTimeoutMs?: number
  /** Every event's outcome, also of events recovered from the journal. */
  readonly onOutcome?: (event: SentEvent, outcome: Outcome) => void
  /** Each change of the connection. */
  readonly onStatus?: (status: ConnectionStatus) => void
}

/** An event with its sequence number and its line, as sent. */
export interface SentEvent {
  /** Counts every event given, from 0; with a journal, across restarts. */
  readonly seq: number
  readonly line: string
  readonly robot: string
}

/**
 * Where events wait on disk until they have a final outcome (./journal.ts
 * in Node). Each call writes before it returns.
 */
export interface Journal {
  /** The next sequence number and the events without a final outcome. */
  readonly recovered: { readonly nextSeq: number; readonly events: SentEvent[] }
  added(event: SentEvent): void
  finished(seqs: readonly number[]): void
  close(): void
}

/** The part of a WebSocket the client uses: the browser's API, which `ws` has too. */
export interface Socket {
  readonly bufferedAmount: number
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}

/** Opens a socket to `url` with `token`: ./node.ts and ./browser.ts each have one. */
export type OpenSocket = (url: string, token: string | undefined) => Socket

interface Entry extends SentEvent {
  readonly resolve: ((outcome: Outcome) => void) | undefined
  /** Sent at least once: it may be stored, so it is never dropped. */
  sent?: boolean
}

/** The reply codes that are retried; every other code is final. */
const RETRIED = new Set(['unavailable', 'rate_limited'])
const FINAL_CODES = new Set(['stale', 'conflict', 'malformed', 'forbidden'])

/** A UTF-16 surrogate without its pair. */
const LONE_SURROGATE = /\p{Cs}/u

/** A close code of the server: a frame over its limits (docs/protocol.md). */
const CLOSE_TOO_BIG = 1009

/** The client of one ingest endpoint. Made by `connect`. */
export class TelemetryClient {
  readonly #url: string
  readonly #options: ClientOptions
  readonly #open: OpenSocket
  readonly #journal: Journal | undefined
  readonly #maxBuffered: number
  #maxLines: number
  readonly #maxBytes: number
  readonly #window: number

  /** Not sent yet, oldest first (`#head` is the first live index). */
  #pending: Entry[] = []
  #head = 0
  /** Sent and unanswered, oldest first; replies answer `#frames[0]`. */
  #frames: Entry[][] = []
  /** Answered with a retried code, waiting for the frames before to be answered. */
  #retry: Entry[] = []
  /** After a retried reply: one frame in flight at a time, until a frame is all final. */
  #careful = false
  /** Waiting out the backoff before retried events are sent again. */
  #resting = false
  /** Ends a connection whose oldest frame waits too long for its reply. */
  #replyTimer: ReturnType<typeof setTimeout> | undefined
  readonly #replyTimeoutMs: number

  #socket: Socket | undefined
  #open_ = false
  #closing = false
  #closed = false
  #shutdown: Promise<void> | undefined
  /** Ends the wait of `close` for the flush. */
  #giveUp: (() => void) | undefined
  #failures = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #pumpQueued = false
  #seq: number
  #flushes: { upTo: number; resolve: () => void }[] = []
  #rooms: (() => void)[] = []
  readonly #stats = {
    given: 0,
    stored: 0,
    duplicate: 0,
    failed: 0,
    dropped: 0,
    resent: 0,
    frames: 0,
    connections: 0,
  }

  constructor(
    url: string,
    options: ClientOptions,
    open: OpenSocket,
    journal?: Journal,
  ) {
    if (!/^wss?:\/\//.test(url) || !URL.canParse(url)) {
      throw new TypeError(`not a ws:// or wss:// URL: ${JSON.stringify(url)}`)
    }
    this.#url = url
    this.#options = options
    this.#open = open
    this.#journal = journal
    this.#maxBuffered = positive(options.maxBuffered, 100_000, 'maxBuffered')
    this.#maxLines = positive(
      options.maxLinesPerFrame,
      1000,
      'maxLinesPerFrame',
    )
    this.#maxBytes = positive(
      options.maxFrameBytes,
      256 * 1024,
      'maxFrameBytes',
    )
    this.#window = positive(options.maxFramesInFlight, 32, 'maxFramesInFlight')
    this.#replyTimeoutMs = positive(
      options.replyTimeoutMs,
      30_000,
      'replyTimeoutMs',
    )
    if (options.robot !== undefined) {
      const parsed = parseEventLine(`0,0,0,${options.robot}`)
      if (isMalformed(parsed) || parsed.robot !== options.robot) {
        throw new TypeError(`robot: not a valid robot name`)
      }
    }
    this.#seq = journal?.recovered.nextSeq ?? 0
    for (const event of journal?.recovered.events ?? []) {
      this.#pending.push({ ...event, resolve: undefined })
      this.#stats.given++
    }
    // After `connect` returns, so that `onStatus` may use the client.
    queueMicrotask(() => this.#connect())
  }

  /** The sequence number the next event gets. */
  get sequence(): number {
    return this.#seq
  }

  /** Events without a final outcome: buffered, in flight or to be retried. */
  get pending(): number {
    return (
      this.#pending.length - this.#head + this.#inFlight() + this.#retry.length
    )
  }

  stats(): ClientStats {
    return {
      ...this.#stats,
      pending: this.pending,
      connected: this.#open_,
    }
  }

  /**
   * Sends an event; resolves with its outcome once it has one. It never
   * rejects: an event that cannot be sent gets an outcome too. Throws only
   * on misuse (after `close`, or numbers without a bound robot), or when
   * the journal cannot be written (the event is then not taken).
   */
  send(event: EventInput): Promise<Outcome>
  send(x: number, y: number, timestamp: number): Promise<Outcome>
  send(
    first: EventInput | number,
    y?: number,
    timestamp?: number,
  ): Promise<Outcome> {
    let event: EventInput
    if (typeof first === 'number') {
      const robot = this.#options.robot
      if (robot === undefined) {
        throw new TypeError(
          'send(x, y, timestamp) needs a client bound to a robot',
        )
      }
      event = { robot, x: first, y: y!, timestamp: timestamp! }
    } else {
      event = first
    }
    const { robot, x, y: y_, timestamp: ts } = event
    if (
      typeof x !== 'number' ||
      typeof y_ !== 'number' ||
      typeof ts !== 'number' ||
      typeof robot !== 'string'
    ) {
      return this.#refuse('x, y and timestamp must be numbers, robot a string')
    }
    return this.sendLine(`${x},${y_},${ts},${robot}`)
  }

  /**
   * Sends a line `x,y,timestamp,robot_name` as it is, once the server's
   * own parser accepts it; a line it refuses is `malformed` at once.
   */
  sendLine(line: string): Promise<Outcome> {
    if (this.#closing) throw new Error('the client is closed')
    const parsed = parseEventLine(line)
    if (isMalformed(parsed) || line.includes('\n') || line.endsWith('\r')) {
      const error = isMalformed(parsed)
        ? parsed.error
        : 'line break in the line'
      return this.#refuse(error)
    }
    // UTF-8 cannot carry it: the server would read U+FFFD instead.
    if (LONE_SURROGATE.test(line)) {
      return this.#refuse('robot_name holds a lone surrogate')
    }
    let resolve!: (outcome: Outcome) => void
    const outcome = new Promise<Outcome>((r) => (resolve = r))
    const entry: Entry = { seq: this.#seq, line, robot: parsed.robot, resolve }
    const full = this.pending >= this.#maxBuffered
    // The oldest event never sent: one that was (and came back after a
    // lost connection) may be stored already.
    let at = this.#head
    if (full && this.#options.overflow !== 'drop-newest') {
      while (this.#pending[at]?.sent === true) at++
    }
    const oldest =
      full && this.#options.overflow !== 'drop-newest'
        ? this.#pending[at]
        : undefined
    if (full && oldest === undefined) {
      // Dropped at once: the journal never hears of it.
      this.#seq++
      this.#stats.given++
      this.#stats.dropped++
      this.#tell(entry, { status: 'dropped', message: 'the buffer is full' })
      return outcome
    }
    // First, so that an event the journal cannot take is not taken at all.
    this.#journal?.added(entry)
    this.#seq++
    this.#stats.given++
    if (oldest !== undefined) {
      if (at === this.#head) {
        this.#pending[this.#head++] = undefined as unknown as Entry
      } else {
        this.#pending.splice(at, 1)
      }
    }
    // In the buffer before the dropped event is told: a send from its
    // outcome comes after this one, and the buffer is never seen with room
    // it does not have.
    this.#pending.push(entry)
    this.#compact()
    if (oldest !== undefined) {
      this.#finish(
        [oldest],
        [{ status: 'dropped', message: 'the buffer is full' }],
      )
    }
    this.#schedulePump()
    return outcome
  }

  /** Resolves once every event given so far has a final outcome. */
  flush(): Promise<void> {
    const upTo = this.#seq
    return new Promise((resolve) => {
      this.#flushes.push({ upTo, resolve })
      this.#settleWaiters()
    })
  }

  /** Resolves once fewer than `maxBuffered` events are pending (for a producer that can wait). */
  room(): Promise<void> {
    if (this.pending < this.#maxBuffered) return Promise.resolve()
    return new Promise((resolve) => this.#rooms.push(resolve))
  }

  /**
   * Flushes (for at most `timeoutMs`, when given), then closes the
   * connection. Events still pending get the outcome `unsent`; with a
   * journal they are sent by the next client that opens it. It may be
   * called again while it waits, say with a shorter `timeoutMs` after a
   * second Ctrl-C: the shortest wait wins, and every call resolves once
   * the client is closed.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    const closing = (this.#shutdown ??= this.#close())
    if (options.timeoutMs !== undefined && !this.#closed) {
      const timer = setTimeout(() => this.#giveUp?.(), options.timeoutMs)
      void closing.then(() => clearTimeout(timer))
    }
    return closing
  }

  async #close(): Promise<void> {
    this.#closing = true
    await Promise.race([
      this.flush(),
      new Promise<void>((resolve) => (this.#giveUp = resolve)),
    ])
    this.#closed = true
    clearTimeout(this.#timer)
    const socket = this.#socket
    this.#socket = undefined
    this.#open_ = false
    clearTimeout(this.#replyTimer)
    if (socket !== undefined) shut(socket, 1000, 'closed')
    const unsent = [
      ...this.#retry,
      ...this.#frames.flat(),
      ...this.#pending.slice(this.#head),
    ]
    this.#retry = []
    this.#frames = []
    this.#pending = []
    this.#head = 0
    for (const entry of unsent) this.#tell(entry, { status: 'unsent' })
    this.#journal?.close()
    this.#settleWaiters()
    this.#options.onStatus?.({ state: 'closed' })
  }

  // --- the connection ---

  #connect() {
    if (this.#closed) return
    this.#options.onStatus?.({ state: 'connecting' })
    let socket: Socket
    try {
      socket = this.#open(this.#url, this.#options.token)
    } catch (error) {
      this.#lost(undefined, (error as Error).message)
      return
    }
    this.#socket = socket
    let error: string | undefined
    socket.onopen = () => {
      this.#open_ = true
      this.#stats.connections++
      this.#options.onStatus?.({ state: 'open' })
      this.#pump()
    }
    socket.onmessage = (message) => this.#reply(socket, String(message.data))
    socket.onerror = (event) => {
      error = (event as { message?: string }).message ?? 'connection error'
    }
    socket.onclose = (event) => {
      if (event.code === CLOSE_TOO_BIG && this.#maxLines > 1) {
        // Over the server's limits: smaller frames from now on.
        this.#maxLines = Math.max(1, Math.floor(this.#maxLines / 2))
      }
      this.#lost(
        socket,
        error ??
          `closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`,
      )
    }
  }

  /** Gives up on a connection at once: nothing more is read from it. */
  #drop(socket: Socket, code: number, reason: string) {
    shut(socket, code, reason)
    this.#lost(socket, reason)
  }

  /** The connection ended: everything unanswered goes back in front, in order. */
  #lost(socket: Socket | undefined, error: string) {
    if (socket !== undefined && socket !== this.#socket) return
    this.#socket = undefined
    this.#open_ = false
    clearTimeout(this.#replyTimer)
    this.#replyTimer = undefined
    if (this.#closed) return
    clearTimeout(this.#timer)
    this.#resting = false
    const unanswered = [...this.#retry, ...this.#frames.flat()]
    this.#stats.resent += this.#frames.reduce((n, f) => n + f.length, 0)
    this.#retry = []
    this.#frames = []
    if (unanswered.length > 0) this.#unshift(unanswered)
    this.#careful = false
    const retryInMs = this.#backoff()
    // How the `ws` package words a refused upgrade.
    const refused = /^Unexpected server response: (\d{3})$/.exec(error)
    this.#options.onStatus?.({
      state: 'waiting',
      error,
      retryInMs,
      ...(refused === null ? {} : { httpStatus: Number(refused[1]) }),
    })
    this.#timer = setTimeout(() => this.#connect(), retryInMs)
  }

  /** The next delay: doubled per failure up to the maximum, half of it random. */
  #backoff(): number {
    const first = this.#options.backoffMs ?? 100
    const most = this.#options.maxBackoffMs ?? 10_000
    const base = Math.min(most, first * 2 ** Math.min(this.#failures++, 30))
    return Math.round(base / 2 + (Math.random() * base) / 2)
  }

  // --- sending ---

  #schedulePump() {
    if (this.#pumpQueued || !this.#open_) return
    this.#pumpQueued = true
    // After the caller's synchronous sends: they go out together.
    queueMicrotask(() => {
      this.#pumpQueued = false
      this.#pump()
    })
  }

  /** Sends frames of the oldest pending events while the window allows. */
  #pump() {
    const socket = this.#socket
    if (socket === undefined || !this.#open_) return
    if (this.#resting || this.#retry.length > 0) return
    const window = this.#careful ? 1 : this.#window
    while (this.#frames.length < window && this.#head < this.#pending.length) {
      const frame: Entry[] = []
      let bytes = 0
      while (
        frame.length < this.#maxLines &&
        this.#head < this.#pending.length
      ) {
        const entry = this.#pending[this.#head]!
        // Within the byte limit: UTF-8 takes at most 3 bytes per UTF-16 unit.
        const size = entry.line.length * 3 + 1
        if (frame.length > 0 && bytes + size > this.#maxBytes) break
        bytes += size
        entry.sent = true
        frame.push(entry)
        this.#pending[this.#head++] = undefined as unknown as Entry
      }
      this.#frames.push(frame)
      this.#stats.frames++
      socket.send(frame.map((e) => e.line).join('\n'))
    }
    if (this.#frames.length > 0) this.#armReplyTimer(socket)
    this.#compact()
  }

  /** Lets go of the slots of events that left the front of `#pending`. */
  #compact() {
    if (this.#head === this.#pending.length) {
      this.#pending = []
      this.#head = 0
    } else if (this.#head > 4096 && this.#head * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head)
      this.#head = 0
    }
  }

  #armReplyTimer(socket: Socket) {
    if (this.#replyTimer !== undefined) return
    const ms = this.#replyTimeoutMs
    this.#replyTimer = setTimeout(() => {
      this.#replyTimer = undefined
      this.#drop(socket, 4000, `no reply for ${ms} ms`)
    }, ms)
  }

  /** Puts events back in front of the pending ones, in their order. */
  #unshift(entries: Entry[]) {
    this.#pending = [...entries, ...this.#pending.slice(this.#head)]
    this.#head = 0
  }

  #inFlight(): number {
    let n = 0
    for (const frame of this.#frames) n += frame.length
    return n
  }

  // --- replies ---

  #reply(socket: Socket, text: string) {
    const frame = this.#frames.shift()
    const lines = text.split('\n')
    if (frame === undefined || lines.length !== frame.length) {
      // Not the protocol: nothing more is read from this connection (a
      // later reply would be matched to the wrong frame), and everything
      // unanswered goes again on a new one.
      if (frame !== undefined) this.#frames.unshift(frame)
      this.#drop(socket, 4002, 'unexpected reply')
      return
    }
    // The next frame's reply has its full time again.
    clearTimeout(this.#replyTimer)
    this.#replyTimer = undefined
    if (this.#frames.length > 0) this.#armReplyTimer(socket)
    const done: Entry[] = []
    const outcomes: Outcome[] = []
    let retried = false
    for (let i = 0; i < frame.length; i++) {
      const line = lines[i]!
      const entry = frame[i]!
      if (line === 'OK') {
        done.push(entry)
        outcomes.push(STORED)
        continue
      }
      if (line === 'DUP') {
        done.push(entry)
        outcomes.push(DUPLICATE)
        continue
      }
      const match = /^ERR (\S+) ?(.*)$/.exec(line)
      const code = match?.[1] ?? 'rejected'
      if (RETRIED.has(code)) {
        this.#retry.push(entry)
        this.#stats.resent++
        retried = true
        continue
      }
      done.push(entry)
      outcomes.push({
        status: FINAL_CODES.has(code) ? (code as OutcomeStatus) : 'rejected',
        message: match?.[2] ?? line,
      })
    }
    this.#finish(done, outcomes)
    if (retried) {
      this.#careful = true
    } else {
      // The server answers again: the next failure waits the least.
      this.#failures = 0
      if (this.#retry.length === 0) this.#careful = false
    }
    if (this.#retry.length > 0 && this.#frames.length === 0) {
      // Every frame sent before is answered: the retried events go first.
      const retry = this.#retry
      this.#retry = []
      this.#unshift(retry)
      clearTimeout(this.#timer)
      this.#resting = true
      this.#timer = setTimeout(() => {
        this.#resting = false
        this.#pump()
      }, this.#backoff())
      return
    }
    this.#pump()
  }

  #finish(entries: Entry[], outcomes: Outcome[]) {
    if (entries.length === 0) return
    this.#journal?.finished(entries.map((e) => e.seq))
    for (let i = 0; i < entries.length; i++) {
      const outcome = outcomes[i]!
      const status = outcome.status
      if (status === 'stored') this.#stats.stored++
      else if (status === 'duplicate') this.#stats.duplicate++
      else if (status === 'dropped') this.#stats.dropped++
      else this.#stats.failed++
      this.#tell(entries[i]!, outcome)
    }
    this.#settleWaiters()
  }

  #tell(entry: Entry, outcome: Outcome) {
    entry.resolve?.(outcome)
    this.#options.onOutcome?.(
      { seq: entry.seq, line: entry.line, robot: entry.robot },
      outcome,
    )
  }

  #refuse(message: string): Promise<Outcome> {
    if (this.#closing) throw new Error('the client is closed')
    this.#stats.given++
    this.#stats.failed++
    return Promise.resolve({ status: 'malformed', message })
  }

  /** Resolves the flushes whose events all have an outcome, and waiting producers. */
  #settleWaiters() {
    const oldest = this.#oldestPending()
    if (this.#flushes.length > 0) {
      const waiting = []
      for (const flush of this.#flushes) {
        if (oldest === undefined || oldest >= flush.upTo) flush.resolve()
        else waiting.push(flush)
      }
      this.#flushes = waiting
    }
    const free = this.#maxBuffered - this.pending
    if (this.#rooms.length > 0 && free > 0) {
      // As many producers as there are free places.
      for (const resolve of this.#rooms.splice(0, free)) resolve()
    }
  }

  /** The sequence number of the oldest event without an outcome. */
  #oldestPending(): number | undefined {
    return (
      this.#retry[0]?.seq ??
      this.#frames[0]?.[0]?.seq ??
      this.#pending[this.#head]?.seq
    )
  }
}

const STORED: Outcome = Object.freeze({ status: 'stored' })
const DUPLICATE: Outcome = Object.freeze({ status: 'duplicate' })

function positive(value: number | undefined, fallback: number, name: string) {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1) {
    throw new TypeError(`${name} must be a positive integer`)
  }
  return value
}

/**
 * Closes a socket whose events no longer matter, and ends it for good if
 * its close handshake has not ended within a second (`ws` would wait 30 s
 * for a peer that stopped answering, and keep the process alive).
 */
function shut(socket: Socket, code: number, reason: string) {
  socket.onclose = socket.onmessage = socket.onopen = null
  // Closing a socket that is still connecting is an error event: not ours.
  socket.onerror = () => {}
  socket.close(code, reason)
  const terminate = (socket as { terminate?: () => void }).terminate
  if (terminate !== undefined) {
    const timer = setTimeout(() => terminate.call(socket), 1000) as unknown
    // In Node: the timer alone keeps no process alive.
    ;(timer as { unref?: () => void }).unref?.()
  }
}

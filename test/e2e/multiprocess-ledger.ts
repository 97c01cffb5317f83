/**
 * The ledger of multiprocess.e2e.test.ts: every line sent and every reply,
 * with the client's clock; a robot client that pipelines frames over one
 * connection at a time (an IngestClient of test/support), can move to
 * another server process and resends what a lost connection never
 * answered; and the checks of what the HTTP API shows against the ledger.
 *
 * All clients live in the test process, so their clock (`performance.now()`)
 * is one clock: a send is stamped just before the frame is written, a reply
 * when it is read. "f was acknowledged before e was sent" is then a real-time
 * fact, and the rule of ingest turns it into checks (see {@link checkLedger}).
 */
import assert from 'node:assert/strict'
import {
  IngestClient,
  RobotModel,
  byCodePoint,
  getJson,
  odometerMatches,
  replyKind,
  robotPath,
  withoutTimes,
  type ApiEvent,
  type Origin,
  type Random,
  type SentFrame,
} from '../support/index.ts'

/**
 * A coordinate: a step of a random walk, with at most 3 decimals, read back
 * from its own text so that the ledger holds exactly what the server parses
 * (`String(-0)` is `0`).
 */
export function step(random: Random, from: number, size = 10): number {
  const raw = Math.round((from + (random.next() - 0.5) * size) * 1000) / 1000
  return Number(String(raw))
}

// --- the ledger ---

/** One distinct event line: a robot at a position at a timestamp. */
export interface Line {
  readonly robot: string
  readonly ts: number
  readonly x: number
  readonly y: number
  readonly text: string
  /** Every time it was sent, over any connection. */
  readonly sends: Send[]
}

/** One sending of a line, and what came back. */
export interface Send {
  readonly line: Line
  /** Index of the server process it was sent to. */
  readonly server: number
  /** The part of the test that sent it. */
  readonly phase: string
  /** Client clock just before the frame was written. */
  readonly sentAt: number
  /** Sent again because an earlier sending got no reply. */
  readonly resend: boolean
  /** The reply line; undefined while unanswered or when lost. */
  reply?: string
  /** Client clock when the reply frame was read. */
  repliedAt?: number
  /** The connection closed before the reply came. */
  lost: boolean
}

/** Every line sent in a run, keyed by its content. */
export class Ledger {
  readonly #lines = new Map<string, Line>()

  /** The line of `robot` at `(x, y)` at `ts`; the same object for the same content. */
  line(robot: string, ts: number, x: number, y: number): Line {
    const text = `${x},${y},${ts},${robot}`
    let line = this.#lines.get(text)
    if (line === undefined) {
      line = { robot, ts, x, y, text, sends: [] }
      this.#lines.set(text, line)
    }
    return line
  }

  get lines(): Line[] {
    return [...this.#lines.values()]
  }

  /** Every sending, optionally of one phase. */
  sends(phase?: string): Send[] {
    const all = this.lines.flatMap((line) => line.sends)
    return phase === undefined ? all : all.filter((s) => s.phase === phase)
  }

  /** Robots with at least one line, in code point order. */
  get robots(): string[] {
    return [...new Set(this.lines.map((l) => l.robot))].sort(byCodePoint)
  }
}

/** A reply's kind: `OK`, `DUP`, `stale`, `conflict`, or the whole reply. */
export function kind(reply: string | undefined): string {
  if (reply === undefined) return 'none'
  const k = replyKind(reply)
  return k === 'stale' || k === 'conflict' || k === 'OK' || k === 'DUP'
    ? k
    : reply
}

/** Counts of reply kinds, e.g. `{OK: 10, DUP: 2}`. */
export function tally(sends: readonly Send[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const s of sends) {
    const k = s.lost ? 'lost' : kind(s.reply)
    counts[k] = (counts[k] ?? 0) + 1
  }
  return counts
}

// --- the client ---

/** Where a client connects: a server process of the test. */
export interface ServerRef {
  readonly wsUrl: string
  /** The token of its ingest connections, with access control on. */
  readonly ingestToken?: string
}

interface Flight {
  readonly lines: readonly Line[]
  readonly sends: Send[]
  readonly done: Promise<boolean>
  finish(answered: boolean): void
}

/** Options of {@link Client.run}. */
export interface RunOptions {
  /** Frames in flight at most. */
  readonly window: number
  /** Indexes of frames before which the client moves to another process. */
  readonly hopAt?: ReadonlySet<number>
  /** Move by cutting the connection (frames in flight are resent) instead of closing it cleanly. */
  readonly abrupt?: boolean
  /** The process to move or reconnect to, given the current one. */
  readonly nextServer: (current: number) => number
  /** Whether a connection that closes by itself is reconnected (else the run fails). */
  readonly allowLoss?: boolean
}

/**
 * One robot client: pipelined frames over one connection at a time. The
 * protocol answers frames in order, so each reply frame answers the oldest
 * frame in flight. When the connection closes with frames in flight, they
 * are lost; {@link run} reconnects (to `nextServer`) and resends them,
 * oldest first, before anything newer.
 */
export class Client {
  readonly name: string
  readonly problems: string[] = []
  /** Close codes of its connections, in order. */
  readonly closeCodes: number[] = []
  /** Process index of the current connection. */
  server = -1
  connections = 0
  /** Frames sent again after a lost connection. */
  resentFrames = 0
  /** Called after each reply frame, with its sendings. */
  onReply?: (sends: readonly Send[]) => void
  phase = ''
  readonly #servers: readonly ServerRef[]
  #connection: IngestClient<Flight> | undefined
  readonly #pastExtraReplies: string[] = []
  #flights: Flight[] = []
  #lost: Flight[] = []
  /** Resolves with the close code once a closed connection's frames are marked lost. */
  #closed: Promise<number> = Promise.resolve(0)

  constructor(name: string, servers: readonly ServerRef[]) {
    this.name = name
    this.#servers = servers
  }

  /** Frames sent and not answered on the current connection. */
  get inFlight(): number {
    return this.#flights.length
  }

  /** Reply frames that came when no frame was waiting for one, on any of its connections. */
  get extraReplies(): string[] {
    return [
      ...this.#pastExtraReplies,
      ...(this.#connection?.extraReplies ?? []),
    ]
  }

  get #dead(): boolean {
    return this.#connection === undefined || this.#connection.isClosed
  }

  /** Opens a connection to process `server` (the current one must be closed). */
  async open(server: number): Promise<void> {
    assert.ok(this.#dead, `${this.name}: open while connected`)
    let connection: IngestClient<Flight>
    try {
      const to = this.#servers[server]!
      connection = await IngestClient.connect<Flight>(to.wsUrl, {
        token: to.ingestToken,
      })
    } catch (error) {
      throw new Error(`${this.name}: connection refused`, { cause: error })
    }
    connection.onReply = (frame) => this.#answer(frame)
    let closed!: (code: number) => void
    this.#closed = new Promise((resolve) => (closed = resolve))
    void connection.closed.then(({ code }) => {
      this.closeCodes.push(code)
      const lost = this.#flights.splice(0)
      for (const flight of lost) {
        for (const s of flight.sends) s.lost = true
        flight.finish(false)
      }
      this.#lost.push(...lost)
      if (connection.binaryReplies > 0) {
        this.problems.push(
          `${this.name}: ${connection.binaryReplies} binary reply frames`,
        )
      }
      closed(code)
    })
    if (this.#connection !== undefined) {
      this.#pastExtraReplies.push(...this.#connection.extraReplies)
    }
    this.#connection = connection
    this.server = server
    this.connections++
  }

  /** A reply frame: it answers the oldest frame in flight. */
  #answer(frame: SentFrame<Flight>): void {
    const flight = this.#flights.shift()
    if (flight === undefined || flight !== frame.tag) {
      this.problems.push(`${this.name}: a reply to another frame`)
      return
    }
    const text = frame.reply!
    const replies = text.split('\n')
    if (replies.length !== flight.sends.length) {
      this.problems.push(
        `${this.name}: ${flight.sends.length} lines got reply ${JSON.stringify(text)}`,
      )
    }
    flight.sends.forEach((s, i) => {
      s.reply = replies[i]
      s.repliedAt = frame.repliedAt
    })
    flight.finish(true)
    this.onReply?.(flight.sends)
  }

  /** Sends one frame now, without waiting for room. */
  #send(lines: readonly Line[], resend: boolean): Flight {
    let finish!: (answered: boolean) => void
    const done = new Promise<boolean>((resolve) => (finish = resolve))
    const flight: Flight = { lines, sends: [], done, finish }
    this.#flights.push(flight)
    const frame = this.#connection!.sendFrame(
      lines.map((l) => l.text).join('\n'),
      { tag: flight },
    )
    for (const line of lines) {
      const s: Send = {
        line,
        server: this.server,
        phase: this.phase,
        sentAt: frame.queuedAt,
        resend,
        lost: false,
      }
      line.sends.push(s)
      flight.sends.push(s)
    }
    return flight
  }

  /** Sends one frame and waits for its reply; the connection must not be lost. */
  async request(lines: readonly Line[]): Promise<readonly Send[]> {
    assert.ok(!this.#dead, `${this.name}: not connected`)
    const flight = this.#send(lines, false)
    if (!(await flight.done)) {
      throw new Error(
        `${this.name}: connection to process ${this.server} lost (${this.closeCodes.at(-1)})`,
      )
    }
    return flight.sends
  }

  /**
   * Sends `frames` in order, at most `window` in flight, moving to another
   * process before each frame of `hopAt`, and recovering a lost connection
   * when `allowLoss`. Resolves when every frame has a reply.
   */
  async run(
    frames: readonly (readonly Line[])[],
    options: RunOptions,
  ): Promise<void> {
    for (let i = 0; i < frames.length; i++) {
      if (options.hopAt?.has(i) === true) await this.#hop(options)
      await this.#room(options)
      this.#send(frames[i]!, false)
    }
    await this.#settle(options)
  }

  /** Waits until a frame may be sent on a live connection. */
  async #room(options: RunOptions): Promise<void> {
    for (;;) {
      if (this.#dead) await this.#recover(options)
      else if (this.#flights.length >= options.window) {
        await this.#flights[0]!.done
      } else return
    }
  }

  /** Waits until every frame sent has a reply. */
  async #settle(options: RunOptions): Promise<void> {
    for (;;) {
      if (this.#lost.length > 0) await this.#recover(options)
      else if (this.#flights.length > 0) await this.#flights.at(-1)!.done
      else return
    }
  }

  /** Moves to `nextServer`: cleanly (every reply first) or by cutting the connection. */
  async #hop(options: RunOptions): Promise<void> {
    if (options.abrupt === true) {
      await this.#connection!.terminate()
      await this.#closed
      await this.#recover({ ...options, allowLoss: true })
      return
    }
    await this.#settle(options)
    await this.#connection!.close()
    const code = await this.#closed
    if (code !== 1000) this.problems.push(`${this.name}: clean close ${code}`)
    await this.open(options.nextServer(this.server))
  }

  /** Reconnects to `nextServer` and resends every lost frame, oldest first. */
  async #recover(options: RunOptions): Promise<void> {
    const code = await this.#closed
    if (options.allowLoss !== true) {
      throw new Error(
        `${this.name}: connection to process ${this.server} closed (${code}) with ${this.#lost.length} frames unanswered`,
      )
    }
    await this.open(options.nextServer(this.server))
    const lost = this.#lost.splice(0)
    for (const flight of lost) this.#send(flight.lines, true)
    this.resentFrames += lost.length
  }

  /** Closes the connection cleanly, if open. */
  async close(): Promise<void> {
    if (!this.#dead) {
      await this.#connection!.close()
      await this.#closed
    }
  }
}

// --- what the ledger says must be stored ---

/** A robot's events that must be stored: every line answered OK or DUP. */
export type Expected = Map<string, Line[]>

/**
 * Checks the ledger against what one process reads back (`stored`: each
 * robot's events as the API lists them; the robots not in it are left out),
 * and returns a list of problems.
 *
 * - every sending has a reply, or was lost and its line was sent again;
 * - no reply is other than `OK`, `DUP`, `ERR stale …`, `ERR conflict …`;
 * - the stored events of a robot are exactly its lines answered OK or DUP
 *   (same timestamp, x and y), each stored once;
 * - a line is `OK` at most once, and only one line of a timestamp is;
 * - `OK` and `DUP` lines are stored; `ERR conflict` has another position
 *   stored at its timestamp; `ERR stale` has nothing stored at its
 *   timestamp and a newer event stored;
 * - real time: an `OK` event was not sent after a newer event of its robot
 *   was acknowledged (it would have been stale); a `DUP` had a sending of
 *   the same line before its reply; `ERR stale` had a newer stored event
 *   sent before its reply; `ERR conflict` had the stored line sent before
 *   its reply.
 */
export function checkLedger(
  ledger: Ledger,
  stored: ReadonlyMap<string, readonly ApiEvent[]>,
): string[] {
  const problems: string[] = []
  const problem = (text: string) => {
    if (problems.length < 30) problems.push(text)
  }
  const byRobot = new Map<string, Line[]>()
  for (const line of ledger.lines) {
    if (!stored.has(line.robot)) continue
    let lines = byRobot.get(line.robot)
    if (lines === undefined) byRobot.set(line.robot, (lines = []))
    lines.push(line)
  }
  for (const [robot, lines] of byRobot) {
    const events = stored.get(robot) ?? []
    const at = new Map<number, ApiEvent>()
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!
      if (i > 0 && e.timestamp <= events[i - 1]!.timestamp) {
        problem(`${robot}: stored timestamps not increasing at ${e.timestamp}`)
      }
      at.set(e.timestamp, e)
    }
    const acked = (l: Line) =>
      l.sends.some((s) => s.reply === 'OK' || s.reply === 'DUP')
    const ackAt = (l: Line) =>
      Math.min(
        ...l.sends
          .filter((s) => s.reply === 'OK' || s.reply === 'DUP')
          .map((s) => s.repliedAt!),
      )
    const firstSent = (l: Line) => Math.min(...l.sends.map((s) => s.sentAt))

    // Stored = acknowledged, exactly.
    const want = lines.filter(acked).sort((a, b) => a.ts - b.ts)
    const storedLine = new Map<number, Line>()
    for (const line of want) {
      const other = storedLine.get(line.ts)
      if (other !== undefined) {
        problem(
          `${robot}: two positions acknowledged at ${line.ts}: ${other.text} and ${line.text}`,
        )
      }
      storedLine.set(line.ts, line)
      const e = at.get(line.ts)
      if (e === undefined) {
        problem(`${robot}: acknowledged ${line.text} is not stored`)
      } else if (!Object.is(e.x, line.x) || !Object.is(e.y, line.y)) {
        problem(
          `${robot}: acknowledged ${line.text}, stored (${e.x},${e.y}) at ${e.timestamp}`,
        )
      }
    }
    for (const e of events) {
      if (!storedLine.has(e.timestamp)) {
        problem(
          `${robot}: stored ${e.x},${e.y},${e.timestamp} was never acknowledged`,
        )
      }
    }

    // Newest acknowledged-first time among stored lines newer than each ts:
    // suffix minima of the acknowledgement times, by timestamp.
    const sortedStored = [...storedLine.values()].sort((a, b) => a.ts - b.ts)
    const suffixAck = new Array<number>(sortedStored.length + 1)
    const suffixSent = new Array<number>(sortedStored.length + 1)
    suffixAck[sortedStored.length] = Infinity
    suffixSent[sortedStored.length] = Infinity
    for (let i = sortedStored.length - 1; i >= 0; i--) {
      suffixAck[i] = Math.min(suffixAck[i + 1]!, ackAt(sortedStored[i]!))
      suffixSent[i] = Math.min(suffixSent[i + 1]!, firstSent(sortedStored[i]!))
    }
    /** Index of the first stored line with a timestamp after `ts`. */
    const after = (ts: number) => {
      let lo = 0
      let hi = sortedStored.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (sortedStored[mid]!.ts <= ts) lo = mid + 1
        else hi = mid
      }
      return lo
    }

    for (const line of lines) {
      const oks = line.sends.filter((s) => s.reply === 'OK').length
      if (oks > 1) problem(`${robot}: ${line.text} answered OK ${oks} times`)
      const e = at.get(line.ts)
      const same = e !== undefined && e.x === line.x && e.y === line.y
      for (const s of line.sends) {
        const where = `${robot}: ${line.text} via process ${s.server} (${s.phase}${s.resend ? ', resent' : ''})`
        if (s.reply === undefined) {
          if (!s.lost) problem(`${where}: no reply and not lost`)
          else if (!line.sends.some((o) => o.sentAt > s.sentAt)) {
            problem(`${where}: lost and never sent again`)
          }
          continue
        }
        const k = kind(s.reply)
        const repliedAt = s.repliedAt!
        if (k === 'OK' || k === 'DUP') {
          if (!same) problem(`${where}: ${k} but not stored as sent`)
          if (k === 'OK' && suffixAck[after(line.ts)]! < s.sentAt) {
            problem(
              `${where}: OK, but a newer event was acknowledged before it was sent`,
            )
          }
          if (
            k === 'DUP' &&
            !line.sends.some((o) => o !== s && o.sentAt < repliedAt)
          ) {
            problem(`${where}: DUP, but no other sending came before its reply`)
          }
        } else if (k === 'stale') {
          if (e !== undefined) {
            problem(`${where}: stale, but (${e.x},${e.y}) is stored there`)
          }
          if (!(suffixSent[after(line.ts)]! < repliedAt)) {
            problem(
              `${where}: stale, but no newer stored event was sent before the reply`,
            )
          }
        } else if (k === 'conflict') {
          if (e === undefined || same) {
            problem(
              `${where}: conflict, but stored there: ${JSON.stringify(e)}`,
            )
          } else if (!(firstSent(storedLine.get(line.ts)!) < repliedAt)) {
            problem(
              `${where}: conflict, but the stored line was sent after the reply`,
            )
          }
        } else {
          problem(`${where}: unexpected reply ${JSON.stringify(s.reply)}`)
        }
      }
    }
  }
  for (const robot of stored.keys()) {
    if (!byRobot.has(robot)) problem(`robot ${robot} stored but never sent`)
  }
  return problems
}

// --- what the API shows ---

/**
 * Checks one process's view of a robot against `events` (what the ledger
 * says it stores): its events, its summary, its odometer over its whole life
 * and over a few random intervals (one with start after end). Returns the
 * problems.
 */
export async function checkRobotView(
  server: Origin,
  robot: string,
  events: readonly ApiEvent[],
  random: Random,
  where: string,
): Promise<string[]> {
  const problems: string[] = []
  const path = robotPath(robot)
  const summary = await getJson(server, path)
  if (summary.status !== 200) {
    return [`${where}: ${robot}: summary status ${summary.status}`]
  }
  const { odometer, ...rest } = withoutTimes(summary.body)
  const model = new RobotModel(robot, events)
  const whole = model.odometer()
  const { odometer: _, ...expected } = model.summary() ?? {}
  const first = events[0]
  const last = events.at(-1)
  try {
    assert.deepEqual(rest, expected)
  } catch (error) {
    problems.push(`${where}: ${robot}: summary ${(error as Error).message}`)
  }
  if (!odometerMatches(odometer, whole)) {
    problems.push(
      `${where}: ${robot}: summary odometer ${String(odometer)}, expected ${whole}`,
    )
  }
  const lo = (first?.timestamp ?? 0) - 3
  const hi = Math.min((last?.timestamp ?? 0) + 3, Number.MAX_SAFE_INTEGER)
  const ranges: (readonly [number | undefined, number | undefined])[] = [
    [undefined, undefined],
  ]
  for (let i = 0; i < 2; i++) {
    const a = Math.max(0, lo + Math.floor(random.next() * (hi - lo)))
    const b = Math.max(0, lo + Math.floor(random.next() * (hi - lo)))
    ranges.push([Math.min(a, b), Math.max(a, b)])
  }
  if (events.length >= 4) {
    // Bounds on events themselves, given swapped.
    const a = random.int(0, events.length - 2)
    const b = random.int(a + 1, events.length - 1)
    ranges.push([events[b]!.timestamp, events[a]!.timestamp])
  }
  for (const [start, end] of ranges) {
    const query =
      start === undefined ? '' : `?start_time=${start}&end_time=${end}`
    const got = await getJson(server, `${path}/odometer${query}`)
    const want = model.odometer(start, end)
    const body = got.body as { odometer?: unknown }
    if (got.status !== 200 || !odometerMatches(body.odometer, want)) {
      problems.push(
        `${where}: ${robot}: odometer${query} ${got.status} ${JSON.stringify(got.body)}, expected ${want}`,
      )
    }
  }
  return problems
}

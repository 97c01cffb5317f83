/**
 * Helpers of multiprocess.e2e.test.ts: a seeded PRNG, a ledger of every line
 * sent and every reply (with the client's clock), a pipelined client that
 * can move to another server process and resend what a lost connection never
 * answered, and the checks of what the HTTP API shows against the ledger.
 *
 * All clients live in the test process, so their clock (`performance.now()`)
 * is one clock: a send is stamped just before the frame is written, a reply
 * when it is read. "f was acknowledged before e was sent" is then a real-time
 * fact, and the rule of ingest turns it into checks (see {@link checkLedger}).
 */
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { getJson, withoutTimes, type ApiEvent } from './helpers.ts'

// --- randomness ---

/** mulberry32: small, seeded, good enough to pick traffic. */
export class Rng {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /** A generator of its own for one part of a run, from the run's seed. */
  static derive(seed: number, part: number): Rng {
    return new Rng((Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + part) >>> 0)
  }

  /** A number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!
  }
}

/** `MULTIPROCESS_SEED` when set, else a fresh seed. */
export function runSeed(): number {
  const given = process.env.MULTIPROCESS_SEED
  if (given !== undefined && given !== '') return Number(given) >>> 0
  return Math.floor(Math.random() * 2 ** 32) >>> 0
}

/**
 * A coordinate: a step of a random walk, with at most 3 decimals, read back
 * from its own text so that the ledger holds exactly what the server parses
 * (`String(-0)` is `0`).
 */
export function step(rng: Rng, from: number, size = 10): number {
  const raw = Math.round((from + (rng.next() - 0.5) * size) * 1000) / 1000
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

/** Sorts names by code point (UTF-8 byte order), as the API lists robots. */
export function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/** A reply's kind: `OK`, `DUP`, `stale`, `conflict`, or the whole reply. */
export function kind(reply: string | undefined): string {
  if (reply === undefined) return 'none'
  if (reply === 'OK' || reply === 'DUP') return reply
  const match = /^ERR (stale|conflict) /.exec(reply)
  return match === null ? reply : match[1]!
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
}

interface Flight {
  readonly lines: readonly Line[]
  readonly sends: readonly Send[]
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
  readonly extraReplies: string[] = []
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
  #ws: WebSocket | undefined
  #flights: Flight[] = []
  #lost: Flight[] = []
  #dead = true
  #closed: Promise<number> = Promise.resolve(0)

  constructor(name: string, servers: readonly ServerRef[]) {
    this.name = name
    this.#servers = servers
  }

  /** Frames sent and not answered on the current connection. */
  get inFlight(): number {
    return this.#flights.length
  }

  /** Opens a connection to process `server` (the current one must be closed). */
  async open(server: number): Promise<void> {
    assert.ok(this.#dead, `${this.name}: open while connected`)
    const ws = new WebSocket(this.#servers[server]!.wsUrl + '/upstream', {
      perMessageDeflate: false,
    })
    let closed!: (code: number) => void
    this.#closed = new Promise((resolve) => (closed = resolve))
    ws.on('error', () => {}) // ends in 'close'
    ws.on('close', (code) => {
      this.#dead = true
      this.closeCodes.push(code)
      const lost = this.#flights.splice(0)
      for (const flight of lost) {
        for (const s of flight.sends) s.lost = true
        flight.finish(false)
      }
      this.#lost.push(...lost)
      closed(code)
    })
    ws.on('message', (data, isBinary) => {
      const now = performance.now()
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data as Buffer).toString('utf8')
      const flight = this.#flights.shift()
      if (flight === undefined) {
        this.extraReplies.push(text)
        return
      }
      const replies = text.split('\n')
      if (isBinary || replies.length !== flight.sends.length) {
        this.problems.push(
          `${this.name}: ${flight.sends.length} lines got ${isBinary ? 'binary ' : ''}reply ${JSON.stringify(text)}`,
        )
      }
      flight.sends.forEach((s, i) => {
        s.reply = replies[i]
        s.repliedAt = now
      })
      flight.finish(true)
      this.onReply?.(flight.sends)
    })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('close', (code) =>
        reject(new Error(`${this.name}: connection refused (${code})`)),
      )
    })
    this.#ws = ws
    this.#dead = false
    this.server = server
    this.connections++
  }

  /** Sends one frame now, without waiting for room. */
  #send(lines: readonly Line[], resend: boolean): Flight {
    const sentAt = performance.now()
    const sends = lines.map((line) => {
      const s: Send = {
        line,
        server: this.server,
        phase: this.phase,
        sentAt,
        resend,
        lost: false,
      }
      line.sends.push(s)
      return s
    })
    let finish!: (answered: boolean) => void
    const done = new Promise<boolean>((resolve) => (finish = resolve))
    const flight: Flight = { lines, sends, done, finish }
    this.#flights.push(flight)
    // A failed write ends in 'close', which marks the frame lost.
    this.#ws!.send(lines.map((l) => l.text).join('\n'), () => {})
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
      this.#ws!.terminate()
      await this.#closed
      await this.#recover({ ...options, allowLoss: true })
      return
    }
    await this.#settle(options)
    this.#ws!.close(1000)
    const code = await this.#closed
    if (code !== 1000) this.problems.push(`${this.name}: clean close ${code}`)
    await this.open(options.nextServer(this.server))
  }

  /** Reconnects to `nextServer` and resends every lost frame, oldest first. */
  async #recover(options: RunOptions): Promise<void> {
    if (options.allowLoss !== true) {
      throw new Error(
        `${this.name}: connection to process ${this.server} closed (${this.closeCodes.at(-1)}) with ${this.#lost.length} frames unanswered`,
      )
    }
    await this.#closed
    await this.open(options.nextServer(this.server))
    const lost = this.#lost.splice(0)
    for (const flight of lost) this.#send(flight.lines, true)
    this.resentFrames += lost.length
  }

  /** Closes the connection cleanly, if open. */
  async close(): Promise<void> {
    if (this.#ws !== undefined && !this.#dead) {
      this.#ws.close(1000)
      await this.#closed
    }
  }
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: limit }, worker))
  return results
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

/** All events of a robot, as `GET /api/robots/{robot}/events` lists them. */
export async function readEvents(
  server: { readonly url: string },
  robot: string,
  range = '',
): Promise<ApiEvent[]> {
  const response = await getJson(
    server,
    `/api/robots/${encodeURIComponent(robot)}/events${range}`,
  )
  assert.equal(response.status, 200, `events of ${robot}`)
  return response.body as ApiEvent[]
}

/** The odometer of consecutive events both within [lo, hi]. */
export function expectedOdometer(
  events: readonly ApiEvent[],
  lo = 0,
  hi = Number.MAX_SAFE_INTEGER,
): number {
  let sum = 0
  let prev: ApiEvent | undefined
  for (const e of events) {
    if (e.timestamp < lo || e.timestamp > hi) continue
    if (prev !== undefined) sum += Math.hypot(e.x - prev.x, e.y - prev.y)
    prev = e
  }
  return sum
}

/** Whether `got` is within a relative 1e-9 of `want` (exact for 0). */
export function close(got: unknown, want: number): boolean {
  return (
    typeof got === 'number' &&
    Math.abs(got - want) <= 1e-9 * Math.max(Math.abs(got), Math.abs(want))
  )
}

/**
 * Checks one process's view of a robot against `events` (what the ledger
 * says it stores): its events, its summary, its odometer over its whole life
 * and over a few random intervals (one with start after end). Returns the
 * problems.
 */
export async function checkRobotView(
  server: { readonly url: string },
  robot: string,
  events: readonly ApiEvent[],
  rng: Rng,
  where: string,
): Promise<string[]> {
  const problems: string[] = []
  const path = `/api/robots/${encodeURIComponent(robot)}`
  const summary = await getJson(server, path)
  if (summary.status !== 200) {
    return [`${where}: ${robot}: summary status ${summary.status}`]
  }
  const { odometer, ...rest } = withoutTimes(summary.body)
  const first = events[0]
  const last = events.at(-1)
  const whole = expectedOdometer(events)
  try {
    assert.deepEqual(rest, {
      name: robot,
      last_x: last?.x,
      last_y: last?.y,
      first_timestamp: first?.timestamp,
      last_timestamp: last?.timestamp,
      event_count: events.length,
    })
  } catch (error) {
    problems.push(`${where}: ${robot}: summary ${(error as Error).message}`)
  }
  if (!close(odometer, whole)) {
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
    const a = Math.max(0, lo + Math.floor(rng.next() * (hi - lo)))
    const b = Math.max(0, lo + Math.floor(rng.next() * (hi - lo)))
    ranges.push([Math.min(a, b), Math.max(a, b)])
  }
  if (events.length >= 4) {
    // Bounds on events themselves, given swapped.
    const a = rng.int(0, events.length - 2)
    const b = rng.int(a + 1, events.length - 1)
    ranges.push([events[b]!.timestamp, events[a]!.timestamp])
  }
  for (const [start, end] of ranges) {
    const query =
      start === undefined ? '' : `?start_time=${start}&end_time=${end}`
    const got = await getJson(server, `${path}/odometer${query}`)
    const want =
      start === undefined
        ? whole
        : expectedOdometer(events, Math.min(start, end!), Math.max(start, end!))
    const body = got.body as { odometer?: unknown }
    if (got.status !== 200 || !close(body.odometer, want)) {
      problems.push(
        `${where}: ${robot}: odometer${query} ${got.status} ${JSON.stringify(got.body)}, expected ${want}`,
      )
    }
  }
  return problems
}

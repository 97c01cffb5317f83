/**
 * Helpers of the crash-safety battery (crash.e2e.test.ts):
 *
 * - a seeded PRNG, so that a failing run can be repeated with its seed;
 * - a model of the rule of ingest that writes event lines (new events,
 *   duplicates, stale events, conflicts, malformed lines) and predicts the
 *   reply to each one. Each robot's lines go over one connection, where they
 *   are judged in the order they were sent, so every reply is predictable;
 * - a pipelining client that records when each frame left and its reply;
 * - checks of what the HTTP API shows against the model.
 *
 * Like helpers.ts, nothing here imports from `src/`.
 */
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { getJson, type ApiEvent, type Closed } from './helpers.ts'

// --- seeded randomness ---

/**
 * The seed of a run: `CRASH_SEED` when set (to repeat a failed run), else a
 * fresh random one.
 */
export function runSeed(): number {
  const given = process.env.CRASH_SEED
  if (given === undefined || given === '') {
    return Math.floor(Math.random() * 2 ** 32)
  }
  const seed = Number(given)
  assert.ok(
    Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32,
    `CRASH_SEED must be an integer from 0 to 2^32-1, not ${given}`,
  )
  return seed
}

/** A small seeded PRNG (mulberry32). */
export class Rng {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /** Another generator, derived from this one's seed and `stream`. */
  static derive(seed: number, stream: number): Rng {
    return new Rng((seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0)
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer from `lo` to `hi`, both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(items: readonly T[]): T {
    assert.ok(items.length > 0, 'pick from an empty list')
    return items[Math.floor(this.next() * items.length)]!
  }
}

// --- the model of a robot ---

/** A robot's event as the model knows it. */
export interface Point {
  readonly ts: number
  readonly x: number
  readonly y: number
}

/** What the server must answer to a line. */
export type Expect = 'OK' | 'DUP' | 'stale' | 'conflict' | 'malformed'

/** An event line and the reply the rule of ingest gives it. */
export interface Line {
  readonly text: string
  readonly expect: Expect
  readonly robot?: RobotModel
  /** For `OK` and `DUP`: the index in `robot.events` of the event. */
  readonly index?: number
  /** For `stale` and `conflict`: the event the line holds. */
  readonly rejects?: Point
}

/** A frame: lines joined by `\n` or `\r\n`. */
export interface Frame {
  readonly text: string
  readonly lines: readonly Line[]
}

export class RobotModel {
  readonly name: string
  /** Timestamp of the robot's first event ever. */
  readonly start: number
  /**
   * The robot's events, oldest first: those read back from the store, then
   * those that lines sent since are expected to add (answered `OK` if the
   * server reads them).
   */
  events: Point[] = []
  /**
   * How many of `events` the store must hold: those read back, and every one
   * whose line was answered `OK` (or `DUP`).
   */
  known = 0
  /** `GET /api/robots/{name}` at the last check, if it found the robot. */
  summary: Record<string, unknown> | undefined
  /** Events answered `ERR stale` or `ERR conflict`, by `ts,x,y`, with their reply. */
  readonly rejected = new Map<string, string>()

  constructor(name: string, start: number) {
    this.name = name
    this.start = start
  }

  get latest(): Point | undefined {
    return this.events.at(-1)
  }

  /** A timestamp after the latest event: a new event. */
  nextTs(rng: Rng): number {
    const latest = this.latest
    // Steps of at least 2 leave a free timestamp before every event, for
    // stale lines.
    return latest === undefined ? this.start : latest.ts + rng.int(2, 500)
  }
}

/** Names that exercise the name rules: spaces, commas, `/`, `%`, emoji, combining marks. */
export function robotNames(count: number, prefix: string): string[] {
  const forms = [
    (i: number) => `${prefix}${i}`,
    (i: number) => `Nibbler ${prefix}${i}`,
    (i: number) => `Unit/${prefix}${i}`,
    (i: number) => `Name, with commas ${prefix}${i}`,
    (i: number) => `🤖 ${prefix}${i}`,
    (i: number) => `50%?#&+${prefix}${i}`,
    (i: number) => `café ${prefix}${i}`,
    (i: number) => `cafe\u0301 ${prefix}${i}`,
  ]
  return Array.from({ length: count }, (_, i) => forms[i % forms.length]!(i))
}

/** Robots with those names; half start at small timestamps, half at epoch milliseconds. */
export function makeRobots(names: readonly string[]): RobotModel[] {
  return names.map(
    (name, i) =>
      new RobotModel(name, i % 2 === 0 ? 1000 + i : 1_700_000_000_000 + i),
  )
}

/** A coordinate with three decimals in [-100, 100] (never -0). */
function coordinate(rng: Rng): number {
  return Math.round((rng.next() * 200 - 100) * 1000) / 1000 + 0
}

/** The same number written one of several ways (`1.5`, `1.5e+0`, `+1.5`, `1.50`). */
function formatNumber(rng: Rng, value: number): string {
  const plain = String(value)
  switch (rng.int(0, 4)) {
    case 0:
      return value.toExponential()
    case 1:
      return value >= 0 ? `+${plain}` : plain
    case 2:
      return plain.includes('.') ? `${plain}0` : `${plain}.0`
    default:
      return plain
  }
}

function formatTs(rng: Rng, ts: number): string {
  return rng.chance(0.1) ? `00${ts}` : String(ts)
}

function eventText(rng: Rng, robot: string, p: Point): string {
  return `${formatNumber(rng, p.x)},${formatNumber(rng, p.y)},${formatTs(rng, p.ts)},${robot}`
}

/** A new event of the robot: after its latest. */
export function newEventLine(rng: Rng, robot: RobotModel): Line {
  const latest = robot.latest
  const stay = latest !== undefined && rng.chance(0.05)
  const point = {
    ts: robot.nextTs(rng),
    x: stay ? latest.x : coordinate(rng),
    y: stay ? latest.y : coordinate(rng),
  }
  robot.events.push(point)
  return {
    text: eventText(rng, robot.name, point),
    expect: 'OK',
    robot,
    index: robot.events.length - 1,
  }
}

/**
 * Lines the parser must reject. Most would otherwise be a new event of the
 * robot, or an event of a robot whose name differs by white space or a
 * control character: stored by mistake, they show up in the checks.
 */
function malformedLine(rng: Rng, robot: RobotModel): string {
  const name = robot.name
  const ts = (robot.latest?.ts ?? robot.start) + 2
  const x = formatNumber(rng, coordinate(rng))
  const y = formatNumber(rng, coordinate(rng))
  const lines = [
    `${x},${y},${ts}.0,${name}`,
    `${x},${y},-${ts},${name}`,
    `${x},${y},${ts}e0,${name}`,
    `${x},${y},,${name}`,
    `${x},${y},9007199254740992,${name}`,
    `${x},${y},${name}`,
    `${x}x,${y},${ts},${name}`,
    `0x1F,${y},${ts},${name}`,
    `${x},1e999,${ts},${name}`,
    `Infinity,${y},${ts},${name}`,
    `,${y},${ts},${name}`,
    ` ${x},${y},${ts},${name}`,
    `${x},${y},${ts}, ${name}`,
    `${x},${y},${ts},${name} `,
    `${x},${y},${ts},${name}\t`,
    `${x},${y},${ts},${name}\u00a0`,
    `${x},${y},${ts},${name}\u0085`,
    `${x},${y},${ts},`,
    `${x},${y},${ts},..`,
    `${x},${y},${ts},${'R'.repeat(151)}`,
    '',
    'hello',
  ]
  return rng.pick(lines)
}

/**
 * One line for the robot: mostly a new event, else a duplicate of one of its
 * events, a stale event, a conflict or a malformed line. The robot's model
 * moves on as the server must.
 */
export function makeLine(rng: Rng, robot: RobotModel): Line {
  const roll = rng.next()
  const events = robot.events
  if (roll < 0.66 || events.length === 0) return newEventLine(rng, robot)
  if (roll < 0.75) {
    // Often the latest, which may be in the same frame: OK then DUP.
    const index = rng.chance(0.3)
      ? events.length - 1
      : rng.int(0, events.length - 1)
    return {
      text: eventText(rng, robot.name, events[index]!),
      expect: 'DUP',
      robot,
      index,
    }
  }
  if (roll < 0.83) {
    // Just before a stored event, where nothing is stored: steps are >= 2.
    const event = rng.pick(events)
    const stale = { ts: event.ts - 1, x: coordinate(rng), y: coordinate(rng) }
    return {
      text: eventText(rng, robot.name, stale),
      expect: 'stale',
      robot,
      rejects: stale,
    }
  }
  if (roll < 0.91) {
    const event = rng.chance(0.3) ? events.at(-1)! : rng.pick(events)
    const moved = rng.chance(0.5)
      ? { ...event, x: event.x + 1 }
      : { ...event, y: event.y - 0.5 }
    return {
      text: eventText(rng, robot.name, moved),
      expect: 'conflict',
      robot,
      rejects: moved,
    }
  }
  return { text: malformedLine(rng, robot), expect: 'malformed', robot }
}

/** Joins lines into a frame, with `\n` or `\r\n`, sometimes with a final line end. */
export function joinFrame(rng: Rng, lines: readonly Line[]): Frame {
  const end = rng.chance(0.2) ? '\r\n' : '\n'
  let text = lines.map((line) => line.text).join(end)
  // A final line end ends the last line; an empty last line needs one.
  if (lines.at(-1)!.text === '' || rng.chance(0.2)) text += end
  return { text, lines }
}

/**
 * A frame of 1 to `maxLines` lines of the given robots; `hot`, when given,
 * gets half of the lines (so that it fills blocks of the store).
 */
export function makeFrame(
  rng: Rng,
  robots: readonly RobotModel[],
  maxLines: number,
  hot?: RobotModel,
): Frame {
  const count = rng.chance(0.3) ? 1 : rng.int(2, maxLines)
  const lines = Array.from({ length: count }, () =>
    makeLine(
      rng,
      hot !== undefined && rng.chance(0.5) ? hot : rng.pick(robots),
    ),
  )
  return joinFrame(rng, lines)
}

/** Whether a reply line is the one the model expects. */
export function replyMatches(expect: Expect, reply: string): boolean {
  return expect === 'OK' || expect === 'DUP'
    ? reply === expect
    : reply.startsWith(`ERR ${expect} `) &&
        reply.length > `ERR ${expect} `.length
}

/**
 * Checks a reply frame against the frame's expected replies, adding what
 * differs to `problems`; every line answered `OK` or `DUP` raises its
 * robot's `known`.
 */
export function checkReply(
  frame: Frame,
  reply: string,
  problems: string[],
  where: string,
): void {
  const got = reply.split('\n')
  if (got.length !== frame.lines.length) {
    problems.push(
      `${where}: frame ${JSON.stringify(frame.text)} got ${got.length} reply lines: ${JSON.stringify(reply)}`,
    )
    return
  }
  frame.lines.forEach((line, i) => {
    const answer = got[i]!
    if (!replyMatches(line.expect, answer)) {
      problems.push(
        `${where}: line ${JSON.stringify(line.text)} answered ${JSON.stringify(answer)}, expected ${line.expect}`,
      )
    } else if (line.robot !== undefined && line.index !== undefined) {
      line.robot.known = Math.max(line.robot.known, line.index + 1)
    } else if (line.robot !== undefined && line.rejects !== undefined) {
      line.robot.rejected.set(pointKey(line.rejects), answer)
    }
  })
}

// --- a pipelining client ---

/** A frame sent on a {@link Pipeline}. */
export interface Sent<F> {
  readonly frame: F
  /** `performance.now()` when the frame was written to the socket. */
  sentAt: number | undefined
  reply: string | undefined
}

/**
 * A client of `/upstream` that sends frames without waiting, keeping at most
 * a window of them unanswered, and matches reply frames to frames in order.
 */
export class Pipeline<F extends { readonly text: string }> {
  readonly ws: WebSocket
  readonly closed: Promise<Closed>
  readonly sent: Sent<F>[] = []
  /** Reply frames that came when no frame was waiting for one. */
  readonly extraReplies: string[] = []
  binaryReplies = 0
  answered = 0
  isClosed = false
  /** Called for each reply, in order, before more frames are sent. */
  onReply: (sent: Sent<F>) => void = () => {}
  #pump: () => void = () => {}

  private constructor(ws: WebSocket) {
    this.ws = ws
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.isClosed = true
        resolve({ code, reason: reason.toString() })
        this.#pump()
      })
    })
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.binaryReplies++
      const text = Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Buffer.concat(data as Buffer[]).toString('utf8')
      const sent = this.sent[this.answered]
      if (sent === undefined) {
        this.extraReplies.push(text)
        return
      }
      this.answered++
      sent.reply = text
      this.onReply(sent)
      this.#pump()
    })
    // Errors end in 'close'.
    ws.on('error', () => {})
  }

  static connect<F extends { readonly text: string }>(
    wsUrl: string,
  ): Promise<Pipeline<F>> {
    const ws = new WebSocket(`${wsUrl}/upstream`, { perMessageDeflate: false })
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Pipeline<F>(ws)))
      ws.once('error', reject)
    })
  }

  /** Frames sent and not answered. */
  get unanswered(): number {
    return this.sent.length - this.answered
  }

  send(frame: F): Sent<F> {
    const sent: Sent<F> = { frame, sentAt: undefined, reply: undefined }
    this.sent.push(sent)
    this.ws.send(frame.text, (error) => {
      if (error === undefined || error === null) sent.sentAt = performance.now()
    })
    return sent
  }

  /**
   * Sends the frames `next()` gives, at most {@link window} of them
   * unanswered at a time, and resolves when `next()` has no more and every
   * frame is answered, or when the connection has closed.
   */
  stream(next: () => F | undefined, window: number): Promise<void> {
    this.window = window
    return new Promise((resolve) => {
      let exhausted = false
      this.#pump = () => {
        while (!this.isClosed && !exhausted && this.unanswered < this.window) {
          const frame = next()
          if (frame === undefined) exhausted = true
          else this.send(frame)
        }
        if (this.isClosed || (exhausted && this.unanswered === 0)) {
          this.#pump = () => {}
          resolve()
        }
      }
      this.#pump()
    })
  }

  /** Most frames {@link stream} leaves unanswered; raising it sends more at once. */
  window = 0

  /** Sets {@link window} and sends up to it at once. */
  widen(window: number): void {
    this.window = window
    this.#pump()
  }

  /** Closes the connection (normal closure) and waits until it is closed. */
  async close(): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000)
    else if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate()
    return this.closed
  }
}

// --- what the API shows ---

/** Odometers are compared with this relative tolerance. */
export const ODOMETER_TOLERANCE = 1e-9

export function assertClose(actual: unknown, expected: number, what: string) {
  assert.equal(typeof actual, 'number', `${what}: a number, got ${actual}`)
  const error = Math.abs((actual as number) - expected)
  assert.ok(
    error <= ODOMETER_TOLERANCE * Math.max(1, Math.abs(expected)),
    `${what}: ${actual}, expected ${expected} (off by ${error})`,
  )
}

/** Sum of the distances between consecutive events with timestamps in [lo, hi]. */
export function distanceIn(
  events: readonly Point[],
  lo = -Infinity,
  hi = Infinity,
): number {
  let sum = 0
  let previous: Point | undefined
  for (const event of events) {
    if (event.ts < lo || event.ts > hi) continue
    if (previous !== undefined) {
      sum += Math.hypot(event.x - previous.x, event.y - previous.y)
    }
    previous = event
  }
  return sum
}

function pointKey(p: Point): string {
  return `${p.ts},${p.x},${p.y}`
}

function robotPath(name: string): string {
  return `/api/robots/${encodeURIComponent(name)}`
}

/** A robot's stored events, all of them or in an interval. */
export async function storedEvents(
  server: { readonly url: string },
  name: string,
  query = '',
): Promise<ApiEvent[]> {
  const response = await getJson(server, `${robotPath(name)}/events${query}`)
  assert.equal(response.status, 200, `events of ${JSON.stringify(name)}`)
  assert.ok(Array.isArray(response.body))
  return response.body as ApiEvent[]
}

/** Options of {@link verifyRobots}. */
export interface VerifyOptions {
  /** Prefixed to every message: the seed, the round. */
  readonly where: string
  readonly rng: Rng
  /** The store holds exactly `known` events of each robot, no event in flight. */
  readonly exact?: boolean
  /** Make what is stored the model's new starting point (drop the events not stored). */
  readonly adopt?: boolean
}

/**
 * Checks every robot of the model against the API:
 *
 * - its stored events are the first events of the model's list, in order,
 *   with the same positions: at least the `known` ones (read back before,
 *   or acknowledged), at most all (the rest were in flight); nothing the
 *   server rejected, nothing twice, timestamps strictly increasing;
 * - `GET /api/robots/{name}` and its entry in `GET /api/robots` match them
 *   (404 and absent when none is stored), and no robot outside the model
 *   exists;
 * - its odometer over its whole life and over random intervals is the sum of
 *   the distances between consecutive stored events in the interval, and
 *   the events route over an interval returns the events in it.
 *
 * Returns how many events are stored, and how many of them were neither
 * acknowledged nor read back before (in flight when the server died).
 */
export async function verifyRobots(
  server: { readonly url: string },
  robots: readonly RobotModel[],
  options: VerifyOptions,
): Promise<{ stored: number; unacknowledged: number }> {
  const { where, rng } = options
  const list = await getJson(server, '/api/robots')
  assert.equal(list.status, 200)
  const listed = new Map<string, unknown>()
  for (const entry of list.body as { name: string }[]) {
    assert.ok(!listed.has(entry.name), `${where}: ${entry.name} listed twice`)
    listed.set(entry.name, entry)
  }
  const modelNames = new Set(robots.map((robot) => robot.name))
  const foreign = [...listed.keys()].filter((name) => !modelNames.has(name))
  assert.deepEqual(foreign, [], `${where}: robots that nobody sent`)

  // Draw every random interval first, so the draws do not depend on the
  // order in which responses arrive.
  const plans = robots.map(() => ({ seed: rng.int(0, 2 ** 32 - 1) }))
  let stored = 0
  let unacknowledged = 0
  const chunk = 8
  for (let from = 0; from < robots.length; from += chunk) {
    const counts = await Promise.all(
      robots.slice(from, from + chunk).map((robot, k) =>
        verifyRobot(server, robot, listed.get(robot.name), {
          ...options,
          where: `${where}, robot ${JSON.stringify(robot.name)}`,
          rng: new Rng(plans[from + k]!.seed),
        }),
      ),
    )
    for (const count of counts) {
      stored += count.stored
      unacknowledged += count.unacknowledged
    }
  }
  return { stored, unacknowledged }
}

async function verifyRobot(
  server: { readonly url: string },
  robot: RobotModel,
  listed: unknown,
  options: VerifyOptions,
): Promise<{ stored: number; unacknowledged: number }> {
  const { where, rng } = options
  const path = robotPath(robot.name)
  const stored = await storedEvents(server, robot.name)
  const n = stored.length

  for (let i = 1; i < n; i++) {
    assert.ok(
      stored[i]!.timestamp > stored[i - 1]!.timestamp,
      `${where}: stored timestamps increase, but #${i - 1} is ${stored[i - 1]!.timestamp} and #${i} is ${stored[i]!.timestamp}`,
    )
  }
  // Nothing the server rejected is stored.
  for (const [i, event] of stored.entries()) {
    const key = pointKey({ ts: event.timestamp, x: event.x, y: event.y })
    const reply = robot.rejected.get(key)
    assert.equal(
      reply,
      undefined,
      `${where}: stored event #${i} ${JSON.stringify(event)} was answered ${JSON.stringify(reply)}`,
    )
  }
  // The stored events are the first n of the model's list.
  for (let i = 0; i < n; i++) {
    const want = robot.events[i]
    assert.deepEqual(
      stored[i],
      want === undefined
        ? undefined
        : { robot: robot.name, x: want.x, y: want.y, timestamp: want.ts },
      `${where}: stored event #${i} of ${n} is not the model's (the model has ${robot.events.length}, ${robot.known} of them acknowledged or read back)`,
    )
  }
  assert.ok(
    n >= robot.known,
    `${where}: ${n} events stored, but ${robot.known} were acknowledged or stored before; the first missing one is ${JSON.stringify(robot.events[n])}`,
  )
  if (options.exact === true) {
    assert.equal(
      n,
      robot.known,
      `${where}: events stored that no reply acknowledged: ${JSON.stringify(robot.events.slice(robot.known, n))}`,
    )
  }
  const points = robot.events.slice(0, n)

  // The robot object.
  const response = await getJson(server, path)
  if (n === 0) {
    assert.equal(response.status, 404, `${where}: no stored event, so 404`)
    assert.equal(listed, undefined, `${where}: no stored event, not listed`)
  } else {
    assert.equal(response.status, 200, `${where}: the robot exists`)
    assert.deepEqual(listed, response.body, `${where}: GET /api/robots entry`)
    const { created_time, updated_time, odometer, ...rest } =
      response.body as Record<string, unknown>
    assert.equal(typeof created_time, 'string')
    assert.equal(typeof updated_time, 'string')
    const last = points.at(-1)!
    assert.deepEqual(
      rest,
      {
        name: robot.name,
        last_x: last.x,
        last_y: last.y,
        first_timestamp: points[0]!.ts,
        last_timestamp: last.ts,
        event_count: n,
      },
      `${where}: the robot's summary`,
    )
    assertClose(odometer, distanceIn(points), `${where}: robot odometer`)
    // A restart changes nothing of a robot: not even its wall-clock times
    // when no event was added since the last check.
    const before = robot.summary
    if (before !== undefined) {
      if (before.event_count === n) {
        assert.deepEqual(response.body, before, `${where}: unchanged robot`)
      } else {
        assert.equal(created_time, before.created_time, `${where}: created`)
      }
    }
    robot.summary = response.body as Record<string, unknown>
  }

  // Odometer over the whole life and over intervals.
  const whole = await getJson(server, `${path}/odometer`)
  assert.equal(whole.status, 200)
  const { odometer: life, ...lifeRest } = whole.body as Record<string, unknown>
  assert.deepEqual(lifeRest, {
    robot: robot.name,
    start_time: null,
    end_time: null,
  })
  assertClose(life, distanceIn(points), `${where}: odometer of its whole life`)

  const first = points[0]?.ts ?? robot.start
  const last = points.at(-1)?.ts ?? robot.start
  const anyTs = () => Math.max(0, rng.int(first - 3, last + 3))
  const eventTs = () => (n === 0 ? anyTs() : rng.pick(points).ts)
  // Bounds at stored events and between them, either way round (the
  // server swaps them), and open on one side.
  const open = rng.int(0, 2)
  const intervals: [number | undefined, number | undefined][] = [
    [eventTs(), eventTs()],
    open === 0
      ? [anyTs(), anyTs()]
      : open === 1
        ? [anyTs(), undefined]
        : [undefined, anyTs()],
  ]
  for (const [start, end] of intervals) {
    const query = new URLSearchParams()
    if (start !== undefined) query.set('start_time', String(start))
    if (end !== undefined) query.set('end_time', String(end))
    const lo =
      start !== undefined && end !== undefined ? Math.min(start, end) : start
    const hi =
      start !== undefined && end !== undefined ? Math.max(start, end) : end
    const what = `${where}: odometer?${query}`
    const answer = await getJson(server, `${path}/odometer?${query}`)
    assert.equal(answer.status, 200, what)
    const { odometer, ...bounds } = answer.body as Record<string, unknown>
    assert.deepEqual(
      bounds,
      { robot: robot.name, start_time: lo ?? null, end_time: hi ?? null },
      what,
    )
    assertClose(odometer, distanceIn(points, lo, hi), what)
  }

  // The events route over an interval.
  const [a, b] = [anyTs(), anyTs()].sort((p, q) => p - q) as [number, number]
  assert.deepEqual(
    await storedEvents(server, robot.name, `?start_time=${a}&end_time=${b}`),
    stored.filter((e) => e.timestamp >= a && e.timestamp <= b),
    `${where}: events?start_time=${a}&end_time=${b}`,
  )

  const unacknowledged = n - robot.known
  if (options.adopt === true) {
    robot.events = points
    robot.known = n
  }
  return { stored: n, unacknowledged }
}

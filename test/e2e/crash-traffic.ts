/**
 * The traffic of the crash-safety battery (crash.e2e.test.ts), and the
 * check of what the HTTP API shows after a crash:
 *
 * - robots whose lines (new events, duplicates, stale events, conflicts,
 *   malformed lines) carry the reply the oracle of test/support predicts.
 *   Each robot's lines go over one connection, where they are judged in the
 *   order they were sent, so the oracle's model, fed the lines in that
 *   order, gives every reply in advance;
 * - {@link verifyRobots}: what the store holds of a robot must be the first
 *   of its events in the order sent: at least those acknowledged, at most
 *   all.
 */
import assert from 'node:assert/strict'
import {
  RobotModel,
  assertOdometer,
  getJson,
  readEvents,
  readOdometer,
  robotPath,
  Random,
  replyKind,
  type ApiEvent,
  type Origin,
  type Outcome,
} from '../support/index.ts'

// --- the robots ---

/** A position at a timestamp, of a line whether or not it is stored. */
export interface Position {
  readonly x: number
  readonly y: number
  readonly timestamp: number
}

/** What the server must answer to a line. */
export type Expect = Outcome | 'malformed'

/** An event line and the reply the rule of ingest gives it. */
export interface Line {
  readonly text: string
  readonly expect: Expect
  readonly robot?: CrashRobot
  /** For `OK` and `DUP`: the index in `robot.events` of the event. */
  readonly index?: number
  /** For `stale` and `conflict`: the event the line holds. */
  readonly rejects?: Position
}

/** A frame: lines joined by `\n` or `\r\n`. */
export interface Frame {
  readonly text: string
  readonly lines: readonly Line[]
}

/** A robot of the battery: the oracle's model of it, and what the store must hold. */
export class CrashRobot {
  readonly name: string
  /** Timestamp of the robot's first event ever. */
  readonly start: number
  /**
   * The oracle fed with every line sent so far: the events read back from
   * the store, then those that lines sent since add (answered `OK` if the
   * server reads them).
   */
  readonly model: RobotModel
  /**
   * How many of the model's events the store must hold: those read back,
   * and every one whose line was answered `OK` (or `DUP`).
   */
  known = 0
  /** `GET /api/robots/{name}` at the last check, if it found the robot. */
  summary: Record<string, unknown> | undefined
  /** Events answered `ERR stale` or `ERR conflict`, by `ts,x,y`, with their reply. */
  readonly rejected = new Map<string, string>()

  constructor(name: string, start: number) {
    this.name = name
    this.start = start
    this.model = new RobotModel(name)
  }

  get events(): readonly ApiEvent[] {
    return this.model.events
  }

  /** A timestamp after the latest event: a new event. */
  nextTs(random: Random): number {
    const latest = this.model.latest
    // Steps of at least 2 leave a free timestamp before every event, for
    // stale lines.
    return latest === undefined
      ? this.start
      : latest.timestamp + random.int(2, 500)
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
export function makeRobots(names: readonly string[]): CrashRobot[] {
  return names.map(
    (name, i) =>
      new CrashRobot(name, i % 2 === 0 ? 1000 + i : 1_700_000_000_000 + i),
  )
}

// --- the lines ---

/** A coordinate with three decimals in [-100, 100] (never -0). */
function coordinate(random: Random): number {
  return Math.round((random.next() * 200 - 100) * 1000) / 1000 + 0
}

/** The same number written one of several ways (`1.5`, `1.5e+0`, `+1.5`, `1.50`). */
function formatNumber(random: Random, value: number): string {
  const plain = String(value)
  switch (random.int(0, 4)) {
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

function formatTs(random: Random, ts: number): string {
  return random.chance(0.1) ? `00${ts}` : String(ts)
}

function eventText(random: Random, robot: string, p: Position): string {
  return `${formatNumber(random, p.x)},${formatNumber(random, p.y)},${formatTs(random, p.timestamp)},${robot}`
}

/** A line of `robot` holding `p`, its reply from the oracle, which moves on. */
function eventLine(random: Random, robot: CrashRobot, p: Position): Line {
  const expect = robot.model.apply(p.x, p.y, p.timestamp)
  const stored = robot.model.at(p.timestamp)
  const text = eventText(random, robot.name, p)
  if (expect === 'OK' || expect === 'DUP') {
    return { text, expect, robot, index: robot.events.indexOf(stored!) }
  }
  return { text, expect, robot, rejects: p }
}

/** A new event of the robot: after its latest. */
export function newEventLine(random: Random, robot: CrashRobot): Line {
  const latest = robot.model.latest
  const stay = latest !== undefined && random.chance(0.05)
  const line = eventLine(random, robot, {
    timestamp: robot.nextTs(random),
    x: stay ? latest.x : coordinate(random),
    y: stay ? latest.y : coordinate(random),
  })
  assert.equal(line.expect, 'OK', 'a new event')
  return line
}

/**
 * Lines the parser must reject. Most would otherwise be a new event of the
 * robot, or an event of a robot whose name differs by white space or a
 * control character: stored by mistake, they show up in the checks.
 */
function malformedLine(random: Random, robot: CrashRobot): string {
  const name = robot.name
  const ts = (robot.model.latest?.timestamp ?? robot.start) + 2
  const x = formatNumber(random, coordinate(random))
  const y = formatNumber(random, coordinate(random))
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
  return random.pick(lines)
}

/**
 * One line for the robot: mostly a new event, else a copy of one of its
 * events, an event just before one of them (where nothing is stored), one
 * of them moved, or a malformed line.
 */
export function makeLine(random: Random, robot: CrashRobot): Line {
  const roll = random.next()
  const events = robot.events
  if (roll < 0.66 || events.length === 0) return newEventLine(random, robot)
  if (roll < 0.75) {
    // Often the latest, which may be in the same frame: OK then DUP.
    const event = random.chance(0.3) ? events.at(-1)! : random.pick(events)
    return eventLine(random, robot, event)
  }
  if (roll < 0.83) {
    const event = random.pick(events)
    return eventLine(random, robot, {
      timestamp: event.timestamp - 1,
      x: coordinate(random),
      y: coordinate(random),
    })
  }
  if (roll < 0.91) {
    const event = random.chance(0.3) ? events.at(-1)! : random.pick(events)
    const moved = random.chance(0.5)
      ? { ...event, x: event.x + 1 }
      : { ...event, y: event.y - 0.5 }
    return eventLine(random, robot, moved)
  }
  return {
    text: malformedLine(random, robot),
    expect: 'malformed',
    robot,
  }
}

/** Joins lines into a frame, with `\n` or `\r\n`, sometimes with a final line end. */
export function joinFrame(random: Random, lines: readonly Line[]): Frame {
  const end = random.chance(0.2) ? '\r\n' : '\n'
  let text = lines.map((line) => line.text).join(end)
  // A final line end ends the last line; an empty last line needs one.
  if (lines.at(-1)!.text === '' || random.chance(0.2)) text += end
  return { text, lines }
}

/**
 * A frame of 1 to `maxLines` lines of the given robots; `hot`, when given,
 * gets half of the lines (so that it fills blocks of the store).
 */
export function makeFrame(
  random: Random,
  robots: readonly CrashRobot[],
  maxLines: number,
  hot?: CrashRobot,
): Frame {
  const count = random.chance(0.3) ? 1 : random.int(2, maxLines)
  const lines = Array.from({ length: count }, () =>
    makeLine(
      random,
      hot !== undefined && random.chance(0.5) ? hot : random.pick(robots),
    ),
  )
  return joinFrame(random, lines)
}

/** A frame as the ingest client sends it, tagged with itself. */
export function outgoing(frame: Frame): { data: string; tag: Frame } {
  return { data: frame.text, tag: frame }
}

function positionKey(p: Position): string {
  return `${p.timestamp},${p.x},${p.y}`
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
    if (replyKind(answer) !== line.expect) {
      problems.push(
        `${where}: line ${JSON.stringify(line.text)} answered ${JSON.stringify(answer)}, expected ${line.expect}`,
      )
    } else if (line.robot !== undefined && line.index !== undefined) {
      line.robot.known = Math.max(line.robot.known, line.index + 1)
    } else if (line.robot !== undefined && line.rejects !== undefined) {
      line.robot.rejected.set(positionKey(line.rejects), answer)
    }
  })
}

// --- what the API shows ---

/** Options of {@link verifyRobots}. */
export interface VerifyOptions {
  /** Prefixed to every message: the seed, the round. */
  readonly where: string
  readonly random: Random
  /** The store holds exactly `known` events of each robot, no event in flight. */
  readonly exact?: boolean
  /** Make what is stored the model's new starting point (drop the events not stored). */
  readonly adopt?: boolean
}

/**
 * Checks every robot against the API:
 *
 * - its stored events are the first events of the model, in order, with
 *   the same positions: at least the `known` ones (read back before, or
 *   acknowledged), at most all (the rest were in flight); nothing the
 *   server rejected, nothing twice, timestamps strictly increasing;
 * - `GET /api/robots/{name}` and its entry in `GET /api/robots` match them
 *   (404 and absent when none is stored), and no robot outside the model
 *   exists;
 * - its odometer over its whole life and over random intervals is the
 *   oracle's over the stored events, and the events route over an interval
 *   returns the events in it.
 *
 * Returns how many events are stored, and how many of them were neither
 * acknowledged nor read back before (in flight when the server died).
 */
export async function verifyRobots(
  server: Origin,
  robots: readonly CrashRobot[],
  options: VerifyOptions,
): Promise<{ stored: number; unacknowledged: number }> {
  const { where, random } = options
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
  const seeds = robots.map(() => random.below(2 ** 32))
  let stored = 0
  let unacknowledged = 0
  const chunk = 8
  for (let from = 0; from < robots.length; from += chunk) {
    const counts = await Promise.all(
      robots.slice(from, from + chunk).map((robot, k) =>
        verifyRobot(server, robot, listed.get(robot.name), {
          ...options,
          where: `${where}, robot ${JSON.stringify(robot.name)}`,
          random: new Random(seeds[from + k]!),
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
  server: Origin,
  robot: CrashRobot,
  listed: unknown,
  options: VerifyOptions,
): Promise<{ stored: number; unacknowledged: number }> {
  const { where, random } = options
  const path = robotPath(robot.name)
  const stored = await readEvents(server, robot.name)
  const n = stored.length

  for (let i = 1; i < n; i++) {
    assert.ok(
      stored[i]!.timestamp > stored[i - 1]!.timestamp,
      `${where}: stored timestamps increase, but #${i - 1} is ${stored[i - 1]!.timestamp} and #${i} is ${stored[i]!.timestamp}`,
    )
  }
  // Nothing the server rejected is stored.
  for (const [i, event] of stored.entries()) {
    const reply = robot.rejected.get(positionKey(event))
    assert.equal(
      reply,
      undefined,
      `${where}: stored event #${i} ${JSON.stringify(event)} was answered ${JSON.stringify(reply)}`,
    )
  }
  // The stored events are the first n of the model's.
  assert.deepEqual(
    stored,
    robot.events.slice(0, n),
    `${where}: the ${n} stored events are not the model's first (the model has ${robot.events.length}, ${robot.known} of them acknowledged or read back)`,
  )
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
  const view = robot.model.prefix(n)

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
    const { odometer: expected, ...summary } = view.summary()!
    assert.deepEqual(rest, summary, `${where}: the robot's summary`)
    assertOdometer(odometer, expected as number, `${where}: robot odometer`)
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
  const { odometer: life, ...lifeRest } = await readOdometer(server, robot.name)
  assert.deepEqual(lifeRest, {
    robot: robot.name,
    start_time: null,
    end_time: null,
  })
  assertOdometer(life, view.odometer(), `${where}: odometer of its whole life`)

  const first = stored[0]?.timestamp ?? robot.start
  const last = stored.at(-1)?.timestamp ?? robot.start
  const anyTs = () => Math.max(0, random.int(first - 3, last + 3))
  const eventTs = () => (n === 0 ? anyTs() : random.pick(stored).timestamp)
  // Bounds at stored events and between them, either way round (the
  // server swaps them), and open on one side.
  const open = random.int(0, 2)
  const intervals: [number | undefined, number | undefined][] = [
    [eventTs(), eventTs()],
    open === 0
      ? [anyTs(), anyTs()]
      : open === 1
        ? [anyTs(), undefined]
        : [undefined, anyTs()],
  ]
  for (const [start, end] of intervals) {
    const lo =
      start !== undefined && end !== undefined ? Math.min(start, end) : start
    const hi =
      start !== undefined && end !== undefined ? Math.max(start, end) : end
    const what = `${where}: odometer from ${start} to ${end}`
    const { odometer, ...bounds } = await readOdometer(server, robot.name, {
      start_time: start,
      end_time: end,
    })
    assert.deepEqual(
      bounds,
      { robot: robot.name, start_time: lo ?? null, end_time: hi ?? null },
      what,
    )
    assertOdometer(odometer, view.odometer(start, end), what)
  }

  // The events route over an interval.
  const [a, b] = [anyTs(), anyTs()].sort((p, q) => p - q) as [number, number]
  assert.deepEqual(
    await readEvents(server, robot.name, { start_time: a, end_time: b }),
    stored.filter((e) => e.timestamp >= a && e.timestamp <= b),
    `${where}: events?start_time=${a}&end_time=${b}`,
  )

  const unacknowledged = n - robot.known
  if (options.adopt === true) {
    robot.model.keep(n)
    robot.known = n
  }
  return { stored: n, unacknowledged }
}

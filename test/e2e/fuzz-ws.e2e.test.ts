/**
 * Fuzzing the ingest WebSocket `ws://HOST:PORT/upstream`: a seeded, bounded
 * run of random frames on several connections at once, where every line's
 * reply is known in advance from docs/protocol.md (fuzz-line-judge.ts judges
 * lines, the oracle of test/support applies the rule of ingest; nothing comes
 * from the server's own parser), then what the HTTP
 * API shows of the stored events. Plus targeted cases: a catalogue of odd
 * lines, a 10 MB frame, and frames of a million lines.
 *
 * Replay a run with TEST_SEED=<seed> (the seed is printed at the start).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  IngestClient,
  MAX_TIMESTAMP,
  Random,
  RobotModel,
  assertErrorResponse,
  byCodePoint,
  getJson,
  readEvents,
  repeatLine,
  seedNote,
  show,
  startServer,
  testSeed,
  withTimeout,
  withoutTimes,
  type ApiEvent,
  type Outcome,
  type ServerProcess,
} from '../support/index.ts'
import {
  REPLY,
  assertReplyLine,
  judgeLine,
  nameIsValid,
  splitFrame,
  type LineVerdict,
} from './fuzz-line-judge.ts'

const SEED = testSeed()
console.log(`fuzz-ws: ${seedNote(SEED)}`)

const MIB = 1024 * 1024

// --- the ingredients of lines ---

/** Unicode white space (protocol.md: any of it counts at either end of a name). */
const WHITE_SPACE = [
  ' ',
  '\u00a0',
  '\u1680',
  '\u2003',
  '\u2009',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u205f',
  '\u3000',
]

/** Control characters (category Cc) other than `\n`, which ends a line. */
const CONTROLS = [
  ...Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)),
  ...Array.from({ length: 0x21 }, (_, i) => String.fromCharCode(0x7f + i)),
].filter((c) => c !== '\n')

/** SQL fragments, sent as robot names. */
const SQL = [
  "'; DROP TABLE log; --",
  "Robert'); DROP TABLE events;--",
  '" OR "1"="1',
  "1' OR '1'='1' --",
  '; DELETE FROM robots WHERE 1=1; --',
  "' UNION SELECT name FROM sqlite_master --",
]

/** Pieces of valid robot names: none starts or ends with white space. */
const NAME_PARTS = [
  'Bender',
  'unit 7',
  'a/b',
  '/',
  '//',
  '%',
  '%2F',
  '%%',
  '100%',
  '%zz',
  '..',
  '../..',
  'x..y',
  '.',
  '"',
  "'",
  '"quoted"',
  "it's",
  '`',
  '\\',
  '?',
  '#',
  '&',
  '+',
  '=',
  ';',
  ':',
  '@',
  ',',
  ',,',
  '<b>',
  '{}',
  '[]',
  '|',
  '*',
  '🤖',
  '👩‍🚀',
  '🇫🇷',
  'e\u0301',
  'é',
  'ロボット',
  'مرحبا',
  '\u200b',
  'a\ufeffb',
  'a\u00a0b',
  '\ufffd',
  'null',
  '__proto__',
  'constructor',
  'NaN',
  'Infinity',
  '0x10',
  '1e999',
  ...SQL,
]

/** Coordinates that are not finite decimal numbers (no comma, no `\n`). */
const BAD_COORDINATES = [
  'NaN',
  '-NaN',
  'Infinity',
  '-Infinity',
  '+Infinity',
  'inf',
  '1e999',
  '-1e999',
  '1e309',
  '9'.repeat(400),
  '0x10',
  '0X1F',
  '0b1',
  '0o7',
  '1_000',
  '',
  ' ',
  ' 1',
  '1 ',
  '\t1',
  '\u00a01',
  '.',
  '-',
  '+',
  'e5',
  '1e',
  '1e+',
  '.e1',
  '--1',
  '+-1',
  '1.2.3',
  '1..2',
  '١',
  '１',
  '½',
  'abc',
  'null',
  '[1]',
  '1/2',
  '1e5.5',
  "'1'",
  '"1"',
  '1f',
  '1n',
]

/** Timestamps that are not integers from 0 to 2^53−1. */
const BAD_TIMESTAMPS = [
  '',
  ' ',
  '-1',
  '-0',
  '+1',
  '1.0',
  '1.',
  '.5',
  '1e3',
  '1E3',
  '0x10',
  ' 1',
  '1 ',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '١٢',
  '１',
  'abc',
  '9007199254740992',
  '9007199254740993',
  '18446744073709551616',
  '1' + '0'.repeat(29),
  '9'.repeat(400),
  '0'.repeat(20) + '9007199254740992',
]

/** Byte sequences that are not UTF-8. */
const INVALID_UTF8 = [
  [0xff],
  [0xfe],
  [0x80],
  [0xc0, 0xaf],
  [0xc3],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
].map((bytes) => Buffer.from(bytes))

/** Lines with fewer than four fields. */
const FEW_FIELDS = [
  '1,2,3',
  '1,2',
  '1',
  'abc',
  'hello world',
  ',,',
  '1,2,3\r',
  '🤖',
]

// --- the generator ---

/** A valid coordinate in one of the written forms protocol.md allows. */
function validCoordinate(rng: Random): string {
  switch (rng.below(8)) {
    case 0:
      return String(rng.int(-1000, 1000))
    case 1:
      return `${rng.pick(['', '+', '-'])}${rng.int(0, 99)}.${rng.int(0, 99)}`
    case 2:
      return `${rng.pick(['', '+', '-'])}.${rng.int(0, 999)}`
    case 3:
      return `${rng.int(1, 9)}.`
    case 4:
      return `${rng.int(1, 99)}${rng.pick(['e', 'E'])}${rng.pick(['', '+', '-'])}${rng.int(0, 30)}`
    case 5:
      return '0'.repeat(rng.int(1, 5)) + String(rng.int(0, 50))
    case 6:
      return rng.pick([
        '1e-400',
        '-1e-999',
        '-0',
        '+0.000',
        '0e0',
        '1.7976931348623157e308',
        '-1.7976931348623157e308',
        '5e-324',
        '123456789012345678901234567890',
        `0.${'0'.repeat(300)}1`,
      ])
    default:
      return (rng.next() * 2e6 - 1e6).toString()
  }
}

/** Another text for the same 64-bit float (so the same position). */
function sameValue(rng: Random, value: number): string {
  if (value === 0) {
    return rng.pick(['0', '-0', '+0', '0.0', '.0', '0e5', '-0E-5', '1e-400'])
  }
  const forms = [
    String(value),
    value.toExponential(),
    value.toExponential(20),
    value.toExponential(20).toUpperCase(),
  ]
  if (value > 0) forms.push(`+${String(value)}`)
  return rng.pick(forms)
}

/** A timestamp as digits, sometimes with leading zeros. */
function timestampText(rng: Random, timestamp: number): string {
  return rng.chance(0.2)
    ? '0'.repeat(rng.int(1, 30)) + String(timestamp)
    : String(timestamp)
}

/** A first timestamp for a new robot. */
function firstTimestamp(rng: Random): number {
  switch (rng.below(5)) {
    case 0:
      return 0
    case 1:
      return MAX_TIMESTAMP - rng.below(50)
    case 2:
      return 1_700_000_000_000 + rng.below(1e9)
    default:
      return rng.below(1_000_000)
  }
}

/** A robot name that breaks a rule of protocol.md, built on a valid one. */
function badName(rng: Random, base: string): string {
  switch (rng.below(8)) {
    case 0:
      return ''
    case 1:
      return base + 'x'.repeat(10_000)
    case 2:
      return '🤖'.repeat(151)
    case 3: {
      const chars = [...base]
      chars.splice(rng.below(chars.length), 0, rng.pick(CONTROLS))
      return chars.join('')
    }
    case 4:
      return rng.pick(WHITE_SPACE) + base
    case 5:
      return base + rng.pick(WHITE_SPACE)
    case 6:
      return rng.pick(['.', '..'])
    default:
      return `${rng.pick(WHITE_SPACE)}${base}${rng.pick(CONTROLS)}`
  }
}

/** An event of a robot that several connections send (see {@link SharedRobot}). */
interface SharedEvent {
  readonly robot: SharedRobot
  readonly timestamp: number
}

/**
 * A robot whose events come from every fuzz connection at once, in
 * timestamp order on each. `copy`: all send the same positions, so each
 * event is `OK` exactly once and `DUP` on every other connection. `race`:
 * each connection sends its own position, so each timestamp is `OK` once
 * and `ERR conflict` on every other connection, and the first one stays.
 */
interface SharedRobot {
  readonly name: string
  readonly type: 'copy' | 'race'
  readonly timestamps: readonly number[]
  /** copy: the one position of each timestamp. */
  readonly positions: ReadonlyMap<number, readonly [number, number]>
  /** Replies per timestamp: which connection got what, with which position. */
  readonly replies: Map<
    number,
    { connection: number; reply: string; x: number; y: number }[]
  >
}

function makeSharedRobots(rng: Random): SharedRobot[] {
  const robots: SharedRobot[] = []
  for (const type of ['copy', 'race'] as const) {
    for (let i = 0; i < 3; i++) {
      let t = firstTimestamp(rng) % 1_000_000_000
      const timestamps: number[] = []
      const positions = new Map<number, readonly [number, number]>()
      for (let k = 0; k < 12; k++) {
        timestamps.push(t)
        positions.set(t, [
          Number(validCoordinate(rng)) || 0,
          Number(validCoordinate(rng)) || 0,
        ])
        t += rng.int(1, 1000)
      }
      const base = rng.pick(NAME_PARTS)
      robots.push({
        name: `${base} shared ${type} ${i}`.trim(),
        type,
        timestamps,
        positions,
        replies: new Map(),
      })
    }
  }
  for (const robot of robots) assert.ok(nameIsValid(robot.name), robot.name)
  return robots
}

/** What one line of a sent frame must be answered with. */
type Expect =
  | { readonly kind: 'fixed'; readonly reply: Outcome | LineVerdict | 'binary' }
  | {
      readonly kind: 'shared'
      readonly event: SharedEvent
      readonly x: number
      readonly y: number
    }

interface Frame {
  readonly data: Buffer
  readonly binary: boolean
  readonly lines: readonly Buffer[]
  readonly expects: readonly Expect[]
}

/** Counts of what the run sent, for the report. */
interface Tally {
  frames: number
  lines: number
  byReply: Record<string, number>
}

/**
 * One fuzz connection: owns its robots (only it sends their valid events,
 * so their replies are known exactly), and sends its share of the events of
 * the shared robots.
 */
class Player {
  readonly id: number
  readonly rng: Random
  /** Robots only this connection sends events for. */
  readonly models = new Map<string, RobotModel>()
  /** Names used only in bad lines: they must never appear. */
  readonly ghosts = new Set<string>()
  readonly #shared: Map<SharedRobot, number>
  readonly #sharedNames: Set<string>
  #names = 0
  readonly tally: Tally

  constructor(
    id: number,
    rng: Random,
    shared: readonly SharedRobot[],
    tally: Tally,
  ) {
    this.id = id
    this.rng = rng
    this.#shared = new Map(shared.map((robot) => [robot, 0]))
    this.#sharedNames = new Set(shared.map((robot) => robot.name))
    this.tally = tally
  }

  /** A fresh valid name, unique to this connection by its tag. */
  newName(): string {
    const rng = this.rng
    const tag = `~${this.id}.${this.#names++}`
    let name: string
    switch (rng.weighted({ parts: 8, long: 1, emoji: 1, sql: 1 })) {
      case 'long':
        name = tag + 'n'.repeat(150 - tag.length)
        break
      case 'emoji':
        name = tag + '🤖'.repeat(150 - tag.length)
        break
      case 'sql':
        name = `${rng.pick(SQL)} ${tag}`
        break
      default: {
        const parts = Array.from({ length: rng.int(0, 3) }, () =>
          rng.pick(NAME_PARTS),
        )
        parts.splice(rng.below(parts.length + 1), 0, tag)
        name = parts.join(rng.pick(['', ' ', '/', ',', '%', ' - ']))
      }
    }
    return nameIsValid(name) ? name : tag
  }

  #robot(): string {
    const names = [...this.models.keys()]
    if (names.length === 0 || this.rng.chance(0.1)) {
      const name = this.newName()
      this.models.set(name, new RobotModel(name))
      return name
    }
    return this.rng.pick(names)
  }

  /** A robot of this connection with a stored event, if any. */
  #storedRobot(): [string, RobotModel] | undefined {
    const stored = [...this.models].filter(([, m]) => m.size > 0)
    return stored.length === 0 ? undefined : this.rng.pick(stored)
  }

  /** A name for a bad line: a robot of this connection or a ghost. */
  #anyName(): string {
    if (this.rng.chance(0.7) && this.models.size > 0) {
      return this.rng.pick([...this.models.keys()])
    }
    const ghost = this.newName()
    this.ghosts.add(ghost)
    return ghost
  }

  #validTimestamp(): string {
    return timestampText(this.rng, this.rng.below(MAX_TIMESTAMP))
  }

  /** One line, as bytes (no `\n`). */
  #line(): Buffer | { shared: SharedEvent; line: string } {
    const rng = this.rng
    const kind = rng.weighted({
      fresh: 26,
      dup: 7,
      stale: 5,
      conflict: 5,
      shared: 10,
      badX: 6,
      badY: 6,
      badTimestamp: 7,
      badName: 9,
      fewFields: 4,
      empty: 3,
      randomBytes: 6,
      invalidUtf8: 4,
    })
    const xy = () => `${validCoordinate(rng)},${validCoordinate(rng)}`
    switch (kind) {
      case 'fresh': {
        let name = this.#robot()
        let model = this.models.get(name)!
        if ((model.latest?.timestamp ?? -1) >= MAX_TIMESTAMP) {
          name = this.newName()
          model = new RobotModel(name)
          this.models.set(name, model)
        }
        const latest = model.latest?.timestamp
        const timestamp =
          latest === undefined
            ? firstTimestamp(rng)
            : latest + rng.int(1, Math.min(1000, MAX_TIMESTAMP - latest))
        return Buffer.from(`${xy()},${timestampText(rng, timestamp)},${name}`)
      }
      case 'dup': {
        const found = this.#storedRobot()
        if (found === undefined) return this.#line()
        const [name, model] = found
        const { timestamp, x, y } = rng.pick(model.events)
        return Buffer.from(
          `${sameValue(rng, x)},${sameValue(rng, y)},${timestampText(rng, timestamp)},${name}`,
        )
      }
      case 'stale': {
        const found = this.#storedRobot()
        if (found === undefined) return this.#line()
        const [name, model] = found
        for (let i = 0; i < 5; i++) {
          const timestamp = rng.below(model.latest!.timestamp)
          if (model.at(timestamp) === undefined) {
            return Buffer.from(
              `${xy()},${timestampText(rng, timestamp)},${name}`,
            )
          }
        }
        return this.#line()
      }
      case 'conflict': {
        const found = this.#storedRobot()
        if (found === undefined) return this.#line()
        const [name, model] = found
        const { timestamp } = rng.pick(model.events)
        return Buffer.from(`${xy()},${timestampText(rng, timestamp)},${name}`)
      }
      case 'shared': {
        const pending = [...this.#shared].filter(
          ([robot, next]) => next < robot.timestamps.length,
        )
        if (pending.length === 0) return this.#line()
        const [robot] = rng.pick(pending)
        return this.#sharedLine(robot)
      }
      case 'badX':
        return Buffer.from(
          `${rng.pick(BAD_COORDINATES)},${rng.chance(0.5) ? validCoordinate(rng) : rng.pick(BAD_COORDINATES)},${rng.chance(0.7) ? this.#validTimestamp() : rng.pick(BAD_TIMESTAMPS)},${this.#anyName()}`,
        )
      case 'badY':
        return Buffer.from(
          `${validCoordinate(rng)},${rng.pick(BAD_COORDINATES)},${rng.chance(0.7) ? this.#validTimestamp() : rng.pick(BAD_TIMESTAMPS)},${rng.chance(0.8) ? this.#anyName() : badName(rng, 'x')}`,
        )
      case 'badTimestamp':
        return Buffer.from(
          `${xy()},${rng.pick(BAD_TIMESTAMPS)},${rng.chance(0.8) ? this.#anyName() : badName(rng, 'x')}`,
        )
      case 'badName':
        return Buffer.from(
          `${xy()},${this.#validTimestamp()},${badName(rng, this.#anyName())}`,
        )
      case 'fewFields':
        return Buffer.from(
          rng.chance(0.5)
            ? rng.pick(FEW_FIELDS)
            : `${validCoordinate(rng)},${this.#anyName().replaceAll(',', '')}`,
        )
      case 'empty':
        return Buffer.alloc(0)
      case 'randomBytes':
        return this.#randomBytes()
      case 'invalidUtf8': {
        const text = Buffer.from(
          `${xy()},${this.#validTimestamp()},${this.#anyName()}`,
        )
        const at = rng.below(text.length + 1)
        return Buffer.concat([
          text.subarray(0, at),
          rng.pick(INVALID_UTF8),
          text.subarray(at),
        ])
      }
    }
  }

  /** Random bytes that are no valid event (they may or may not be UTF-8). */
  #randomBytes(): Buffer {
    for (;;) {
      const n = this.rng.int(1, 60)
      const bytes = this.rng.chance(0.5)
        ? this.rng.bytes(n, [0x0a])
        : Buffer.from(
            this.rng.string(n, '0123456789,.-+eE xyz🤖\u0000\u0085\r\t%/"\''),
          )
      if (bytes.includes(0x0a)) continue
      if (judgeLine(bytes).kind !== 'event') return bytes
    }
  }

  #sharedLine(robot: SharedRobot) {
    const next = this.#shared.get(robot)!
    this.#shared.set(robot, next + 1)
    const timestamp = robot.timestamps[next]!
    const rng = this.rng
    let text: string
    if (robot.type === 'copy') {
      const [x, y] = robot.positions.get(timestamp)!
      text = `${sameValue(rng, x)},${sameValue(rng, y)}`
    } else {
      text = `${this.id + 1},${timestamp % 97}`
    }
    return {
      shared: { robot, timestamp },
      line: `${text},${timestampText(rng, timestamp)},${robot.name}`,
    }
  }

  /** Whether shared events are still to be sent. */
  get sharedPending(): boolean {
    return [...this.#shared].some(([r, next]) => next < r.timestamps.length)
  }

  /**
   * Builds a frame of `lines` generated lines, and what each line must be
   * answered with (the models move on as the server will).
   */
  #textFrame(count: number, sharedOnly = false): Frame {
    const rng = this.rng
    const lines: Buffer[] = []
    const expects: Expect[] = []
    for (let i = 0; i < count; i++) {
      let made: Buffer | { shared: SharedEvent; line: string }
      if (sharedOnly) {
        const pending = [...this.#shared].filter(
          ([robot, next]) => next < robot.timestamps.length,
        )
        if (pending.length === 0) break
        made = this.#sharedLine(rng.pick(pending)[0])
      } else {
        made = this.#line()
      }
      let bytes = Buffer.isBuffer(made) ? made : Buffer.from(made.line)
      if (rng.chance(0.15)) bytes = Buffer.concat([bytes, Buffer.from('\r')])
      lines.push(bytes)
      const verdict = judgeLine(bytes)
      if (!Buffer.isBuffer(made)) {
        assert.equal(verdict.kind, 'event', `shared line ${show(bytes)}`)
        if (verdict.kind === 'event') {
          expects.push({
            kind: 'shared',
            event: made.shared,
            x: verdict.x,
            y: verdict.y,
          })
        }
        continue
      }
      if (verdict.kind === 'malformed') {
        expects.push({ kind: 'fixed', reply: verdict })
        continue
      }
      // A valid event: only ever of a robot of this connection (a ghost
      // whose bad line turned out valid becomes one).
      assert.ok(
        !this.#sharedNames.has(verdict.robot),
        `generator: ${show(bytes)} is no shared event`,
      )
      let model = this.models.get(verdict.robot)
      if (model === undefined) {
        model = new RobotModel(verdict.robot)
        this.models.set(verdict.robot, model)
        this.ghosts.delete(verdict.robot)
      }
      expects.push({
        kind: 'fixed',
        reply: model.apply(verdict.x, verdict.y, verdict.timestamp),
      })
    }
    let data = Buffer.concat(
      lines.flatMap((line, i) =>
        i === 0 ? [line] : [Buffer.from('\n'), line],
      ),
    )
    // One final `\n` is optional, except after an empty last line of
    // several, which it alone keeps.
    const lastEmpty = lines.length > 1 && lines[lines.length - 1]!.length === 0
    if (lastEmpty || rng.chance(0.3))
      data = Buffer.concat([data, Buffer.from('\n')])
    assert.deepEqual(
      splitFrame(data).map((b) => b.toString('hex')),
      lines.map((b) => b.toString('hex')),
      'generator: the frame splits into the generated lines',
    )
    return { data, binary: false, lines, expects }
  }

  /** The next random frame. */
  frame(): Frame {
    const rng = this.rng
    switch (rng.weighted({ lines: 86, binary: 5, emptyish: 5, single: 4 })) {
      case 'binary': {
        const data = rng.chance(0.5)
          ? rng.bytes(rng.int(0, 200))
          : Buffer.from(`0,0,${rng.below(1000)},${this.#anyName()}`)
        return {
          data,
          binary: true,
          lines: [data],
          expects: [{ kind: 'fixed', reply: 'binary' }],
        }
      }
      case 'emptyish': {
        const data = Buffer.from(
          rng.pick(['', '\n', '\r', '\r\n', '\n\n', '\r\n\r\n', '\n\n\n']),
        )
        const lines = splitFrame(data)
        return {
          data,
          binary: false,
          lines,
          expects: lines.map((line) => ({
            kind: 'fixed',
            reply: judgeLine(line),
          })),
        }
      }
      case 'single':
        return this.#textFrame(1)
      default:
        return this.#textFrame(rng.int(2, 25))
    }
  }

  /** Frames holding every shared event not sent yet. */
  flushFrames(): Frame[] {
    const frames: Frame[] = []
    while (this.sharedPending) frames.push(this.#textFrame(25, true))
    return frames
  }

  /** Checks a reply frame line by line against the frame's expectations. */
  check(frame: Frame, reply: string, where: string): void {
    const replies = reply.split('\n')
    assert.equal(
      replies.length,
      frame.expects.length,
      `${where}: one reply line per line of ${show(frame.data, 400)}; got ${show(reply, 400)}`,
    )
    this.tally.frames++
    frame.expects.forEach((expect, i) => {
      const actual = replies[i]!
      this.tally.lines++
      const key = /^(OK|DUP|ERR \w+)/.exec(actual)?.[1] ?? actual
      this.tally.byReply[key] = (this.tally.byReply[key] ?? 0) + 1
      const what = `seed ${SEED}, ${where}, line ${i}: ${show(frame.lines[i] ?? Buffer.alloc(0))}`
      if (expect.kind === 'fixed') {
        assertReplyLine(actual, expect.reply, what)
        return
      }
      const { robot, timestamp } = expect.event
      const allowed = robot.type === 'copy' ? ['OK', 'DUP'] : ['OK', 'conflict']
      const outcome = actual.startsWith('ERR conflict ') ? 'conflict' : actual
      assert.ok(allowed.includes(outcome), `${what}: ${actual}`)
      const list = robot.replies.get(timestamp) ?? []
      list.push({
        connection: this.id,
        reply: outcome,
        x: expect.x,
        y: expect.y,
      })
      robot.replies.set(timestamp, list)
    })
  }
}

describe(`ingest fuzz (${seedNote(SEED)})`, () => {
  let server: ServerProcess

  before(async () => {
    server = await startServer()
  })
  after(async () => {
    await server?.dispose()
  })

  test('answers every line of random frames on six connections at once as protocol.md says, and stores exactly the valid events', async (t) => {
    const rng = Random.derive(SEED, 1)
    const shared = makeSharedRobots(rng.fork())
    const tally: Tally = { frames: 0, lines: 0, byReply: {} }
    const connections = 6
    const framesEach = 45
    const players = Array.from(
      { length: connections },
      (_, id) => new Player(id, rng.fork(), shared, tally),
    )
    const clients = await Promise.all(
      players.map(() => IngestClient.connect(server.wsUrl)),
    )

    await Promise.all(
      players.map(async (player, c) => {
        const client = clients[c]!
        let sent = 0
        const send = async (frames: Frame[]) => {
          // Pipelined: every frame of the burst is sent before any reply.
          const replies = frames.map((f) => client.send(f.data, f.binary))
          for (const [i, frame] of frames.entries()) {
            const where = `connection ${c}, frame ${sent + i}`
            const reply = await withTimeout(replies[i]!, where)
            player.check(frame, reply, where)
          }
          sent += frames.length
        }
        while (sent < framesEach) {
          const burst = Math.min(player.rng.int(1, 8), framesEach - sent)
          await send(Array.from({ length: burst }, () => player.frame()))
        }
        await send(player.flushFrames())
        await client.end()
      }),
    )

    // Shared robots: each event is OK exactly once, DUP (copy) or ERR
    // conflict (race) on every other connection; the OK one is stored.
    const expectedEvents = new Map<string, ApiEvent[]>()
    for (const robot of shared) {
      const events: ApiEvent[] = []
      for (const timestamp of robot.timestamps) {
        const replies = robot.replies.get(timestamp) ?? []
        assert.equal(
          replies.length,
          connections,
          `${robot.name} @ ${timestamp}`,
        )
        const ok = replies.filter((r) => r.reply === 'OK')
        assert.equal(
          ok.length,
          1,
          `seed ${SEED}: ${robot.name} @ ${timestamp} is OK exactly once: ${JSON.stringify(replies)}`,
        )
        events.push({ robot: robot.name, x: ok[0]!.x, y: ok[0]!.y, timestamp })
      }
      expectedEvents.set(robot.name, events)
    }
    // Robots of one connection: exactly the events the model stored.
    for (const player of players) {
      for (const [name, model] of player.models) {
        if (model.size > 0) expectedEvents.set(name, [...model.events])
      }
    }
    for (const [name, events] of expectedEvents) {
      assert.deepEqual(
        await readEvents(server, name),
        events,
        `seed ${SEED}: stored events of ${JSON.stringify(name)}`,
      )
    }

    // The robot list: exactly these robots, in code point order, with the
    // right counts, and no ghost of a rejected line.
    const list = await getJson(server, '/api/robots')
    assert.equal(list.status, 200)
    const robots = (list.body as unknown[]).map(withoutTimes)
    assert.deepEqual(
      robots.map((r) => r.name),
      [...expectedEvents.keys()].sort(byCodePoint),
      `seed ${SEED}: the robot list`,
    )
    for (const robot of robots) {
      const events = expectedEvents.get(robot.name as string)!
      const last = events[events.length - 1]!
      assert.deepEqual(
        [
          robot.event_count,
          robot.first_timestamp,
          robot.last_timestamp,
          robot.last_x,
          robot.last_y,
        ],
        [events.length, events[0]!.timestamp, last.timestamp, last.x, last.y],
        `seed ${SEED}: robot ${JSON.stringify(robot.name)}`,
      )
    }
    const ghosts = players.flatMap((p) => [...p.ghosts])
    for (const ghost of ghosts.slice(0, 20)) {
      await assertErrorResponse(
        server,
        `/api/robots/${encodeURIComponent(ghost)}`,
        404,
        'ROBOT_NOT_FOUND',
      )
    }

    const summary = `${tally.lines} lines in ${tally.frames} frames on ${connections} connections; ${expectedEvents.size} robots stored; replies ${JSON.stringify(tally.byReply)}`
    t.diagnostic(summary)
    console.log(`fuzz-ws: ${summary}`)
    for (const reply of [
      'OK',
      'DUP',
      'ERR malformed',
      'ERR stale',
      'ERR conflict',
    ]) {
      assert.ok((tally.byReply[reply] ?? 0) > 0, `the run produced ${reply}`)
    }
  })

  test('answers a catalogue of odd lines as protocol.md says, and reads the valid ones back by percent-encoded name', async () => {
    const client = await IngestClient.connect(server.wsUrl)
    const name = (s: string) => `${s} #cat`
    // [line, what protocol.md makes of it]
    const cases: [string | Buffer, string][] = [
      ['NaN,0,1,' + name('n'), 'x'],
      ['0,NaN,1,' + name('n'), 'y'],
      ['Infinity,0,1,' + name('n'), 'x'],
      ['0,-Infinity,1,' + name('n'), 'y'],
      ['1e999,0,1,' + name('n'), 'x'],
      ['0,-1e999,1,' + name('n'), 'y'],
      ['0x10,0,1,' + name('n'), 'x'],
      ['0,0x10,1,' + name('n'), 'y'],
      [',0,1,' + name('n'), 'x'],
      ['0,,1,' + name('n'), 'y'],
      ['0,0,,' + name('n'), 'timestamp'],
      [' 0,0,1,' + name('n'), 'x'],
      ['0,0,1', 'fields'],
      ['0,0', 'fields'],
      ['', 'empty'],
      ['\r', 'empty'],
      ['0,0,9007199254740992,' + name('n'), 'timestamp'],
      ['0,0,99999999999999999999999,' + name('n'), 'timestamp'],
      ['0,0,-1,' + name('n'), 'timestamp'],
      ['0,0,1.5,' + name('n'), 'timestamp'],
      ['0,0,1e3,' + name('n'), 'timestamp'],
      ['0,0,0x10,' + name('n'), 'timestamp'],
      ['0,0,1,', 'robot_name'],
      ['0,0,1,' + 'n'.repeat(10_000), 'robot_name'],
      ['0,0,1,' + name('tab\there'), 'robot_name'],
      ['0,0,1,' + name('nul\u0000'), 'robot_name'],
      ['0,0,1,' + name('cr\rin'), 'robot_name'],
      ['0,0,1, ' + name('lead'), 'robot_name'],
      ['0,0,1,' + name('trail') + ' ', 'robot_name'],
      ['0,0,1,' + name('trail') + '\u3000', 'robot_name'],
      ['0,0,1,..', 'robot_name'],
      [Buffer.from([0x30, 0x2c, 0x30, 0x2c, 0x31, 0x2c, 0xff]), 'utf8'],
      // Valid lines, new robots each.
      ['0,0,1,' + name('a/b'), 'OK'],
      ['0,0,1,' + name('50%?#&+'), 'OK'],
      ['0,0,1,' + name('%2F%zz%'), 'OK'],
      ['0,0,1,' + name('../..'), 'OK'],
      ['0,0,1,' + name('say "hi"'), 'OK'],
      ['0,0,1,' + name("it's"), 'OK'],
      ['0,0,1,' + "'; DROP TABLE log; --", 'OK'],
      ['0,0,1,' + "x'); DELETE FROM events; --", 'OK'],
      ['0,0,1,' + name('🤖👩‍🚀🇫🇷'), 'OK'],
      ['0,0,1,' + '🤖'.repeat(150), 'OK'],
      ['0,0,1,' + name('inner  space'), 'OK'],
      ['0,0,1,' + name('extra,fields,here'), 'OK'],
      ['1,2,3,4,5', 'OK'],
      ['0,0,00000000000000000009007199254740991,' + name('max'), 'OK'],
      ['-1.5e3,.5,2,' + name('a/b'), 'OK'],
      // Same position written otherwise: 1e-400 reads as 0, -0 is 0.
      ['1e-400,-0,1,' + name('a/b'), 'DUP'],
      ['+0.0e7,0e0,1,' + name('a/b'), 'DUP'],
      ['0,0,1,' + name('a/b') + '\r', 'DUP'],
      ['1,0,1,' + name('a/b'), 'conflict'],
      ['0,0,0,' + name('a/b'), 'stale'],
      ['-15E2,0.5e0,2,' + name('a/b'), 'DUP'],
      ['0,0,9007199254740991,' + name('max'), 'DUP'],
    ]
    const models = new Map<string, RobotModel>()
    const expected = cases.map(([line, what]) => {
      const verdict = judgeLine(Buffer.from(line))
      if (verdict.kind === 'malformed') {
        assert.equal(verdict.why, what, `oracle: ${show(line)}`)
        return verdict
      }
      let model = models.get(verdict.robot)
      if (model === undefined)
        models.set(verdict.robot, (model = new RobotModel(verdict.robot)))
      const outcome = model.apply(verdict.x, verdict.y, verdict.timestamp)
      assert.equal(outcome, what, `oracle: ${show(line)}`)
      return outcome
    })
    const frame = Buffer.concat(
      cases.flatMap(([line], i) => [
        ...(i === 0 ? [] : [Buffer.from('\n')]),
        Buffer.from(line),
      ]),
    )
    const replies = (await withTimeout(client.send(frame), 'catalogue')).split(
      '\n',
    )
    assert.equal(replies.length, cases.length)
    cases.forEach(([line], i) =>
      assertReplyLine(replies[i], expected[i]!, `catalogue line ${show(line)}`),
    )
    for (const [robot, model] of models) {
      if (model.size === 0) continue
      assert.deepEqual(
        await readEvents(server, robot),
        model.events,
        `events of ${JSON.stringify(robot)}`,
      )
    }
    // The SQL names did nothing to the store: every robot is still there.
    const list = await getJson(server, '/api/robots?limit=10000')
    const names = (list.body as { name: string }[]).map((r) => r.name)
    for (const robot of models.keys()) assert.ok(names.includes(robot), robot)
    await client.end()
  })

  test('accepts U+FEFF at either end of a robot name: it is no Unicode white space (protocol.md)', async () => {
    // U+FEFF (ZERO WIDTH NO-BREAK SPACE) is category Cf without the Unicode
    // White_Space property; JavaScript's \s matches it nonetheless.
    const client = await IngestClient.connect(server.wsUrl)
    const names = ['\ufeffBOM first', 'BOM last\ufeff']
    for (const name of names) {
      assert.equal(judgeLine(Buffer.from(`0,0,1,${name}`)).kind, 'event')
    }
    const replies = await withTimeout(
      client.send(names.map((name) => `0,0,1,${name}`).join('\n')),
      'U+FEFF names',
    )
    assert.equal(replies, 'OK\nOK', `replies ${JSON.stringify(replies)}`)
    for (const name of names) {
      assert.deepEqual(await readEvents(server, name), [
        { robot: name, x: 0, y: 0, timestamp: 1 },
      ])
    }
    await client.end()
  })

  test('closes a connection that sends a 10 MB frame with 1009, and the other connections go on being answered', async () => {
    const big = await IngestClient.connect(server.wsUrl)
    const bystanders = await Promise.all(
      [0, 1, 2].map(() => IngestClient.connect(server.wsUrl)),
    )
    assert.equal(await big.send('0,0,1,Ten MB sender'), 'OK')
    // The bystanders pipeline frames while the big frame goes out.
    const busy = bystanders.map((client, b) =>
      client.sendAll(
        Array.from(
          { length: 40 },
          (_, i) => `${i},0,${i},Ten MB bystander ${b}\nnot an event`,
        ),
      ),
    )
    const oversized = big.send(Buffer.alloc(10 * 1000 * 1000, 'a'))
    await assert.rejects(oversized)
    const closed = await withTimeout(big.closed, '10 MB close')
    assert.equal(closed.code, 1009)
    for (const replies of await withTimeout(Promise.all(busy), 'bystanders')) {
      assert.equal(replies.length, 40)
      for (const reply of replies) {
        assert.match(reply, /^OK\nERR malformed \S/)
      }
    }
    for (const [b, client] of bystanders.entries()) {
      assert.equal(
        await withTimeout(
          client.send(`1,1,100,Ten MB bystander ${b}`),
          'after',
        ),
        'OK',
      )
      await client.end()
    }
    const robot = await getJson(server, '/api/robots/Ten%20MB%20sender')
    assert.equal(
      (withoutTimes(robot.body) as { event_count: number }).event_count,
      1,
    )
  })

  test('by default closes a frame of a million empty lines with 1009 and a reason naming the lines, and stores nothing of an over-long frame', async () => {
    const bystander = await IngestClient.connect(server.wsUrl)

    // At the default limit of 10 000 lines: accepted.
    const atLimit = await IngestClient.connect(server.wsUrl)
    assert.equal(
      await withTimeout(atLimit.send('\n'.repeat(10_000)), '10 000 lines'),
      repeatLine(REPLY.empty, 10_000),
    )
    // 10 000 lines with a final `\n`: still 10 000 lines.
    const withFinal = Array.from(
      { length: 10_000 },
      (_, i) => `0,0,${i},Line limit ok\n`,
    ).join('')
    assert.equal(
      await withTimeout(atLimit.send(withFinal), '10 000 events'),
      repeatLine('OK', 10_000),
    )
    await atLimit.end()

    // One line more: the connection is closed and nothing of it stored;
    // the frame before it is answered.
    const over = await IngestClient.connect(server.wsUrl)
    const before = over.send('0,0,1,Line limit before')
    const tooMany = over.send(`0,0,1,Line limit over\n${'\n'.repeat(9_999)}x`)
    assert.equal(await withTimeout(before, 'frame before'), 'OK')
    await assert.rejects(tooMany)
    const closed = await withTimeout(over.closed, '10 001 lines')
    assert.equal(closed.code, 1009)
    assert.match(closed.reason, /line/i)
    await assertErrorResponse(
      server,
      '/api/robots/Line%20limit%20over',
      404,
      'ROBOT_NOT_FOUND',
    )

    // A million empty lines: 1 000 000 bytes, under the 1 MiB frame limit.
    const million = '\n'.repeat(1_000_000)
    assert.ok(Buffer.byteLength(million) <= MIB)
    const client = await IngestClient.connect(server.wsUrl)
    await assert.rejects(client.send(million))
    const closedMillion = await withTimeout(client.closed, 'a million lines')
    assert.equal(closedMillion.code, 1009)
    assert.match(closedMillion.reason, /line/i)

    assert.equal(
      await withTimeout(
        bystander.send('0,0,1,Line limit bystander'),
        'bystander',
      ),
      'OK',
    )
    await bystander.end()
  })

  test('after all that, still answers a fresh connection and an HTTP request', async () => {
    const client = await withTimeout(
      IngestClient.connect(server.wsUrl),
      'a fresh connection',
    )
    assert.equal(
      await withTimeout(client.send('0,0,1,Still alive'), 'fresh event'),
      'OK',
    )
    await client.end()
    const health = await withTimeout(getJson(server, '/healthz'), 'healthz')
    assert.equal(health.status, 200)
    assert.equal(server.stdout().includes('listening'), true)
  })
})

describe('ingest with --max-lines-per-frame 1000000', () => {
  let server: ServerProcess

  before(async () => {
    server = await startServer(['--max-lines-per-frame', '1000000'])
  })
  after(async () => {
    await server?.dispose()
  })

  test('answers a frame of a million empty lines line by line, while another connection is answered', async () => {
    const big = await IngestClient.connect(server.wsUrl)
    const other = await IngestClient.connect(server.wsUrl)
    const million = big.send('\n'.repeat(1_000_000))
    const next = big.send('0,0,1,After a million lines')
    // Another connection is served while (or right after) the frame is read.
    assert.equal(
      await withTimeout(other.send('0,0,1,Beside a million lines'), 'other'),
      'OK',
    )
    const reply = await withTimeout(million, 'a million lines')
    const lines = reply.split('\n')
    assert.equal(lines.length, 1_000_000)
    assert.equal(lines[0], REPLY.empty)
    assert.equal(lines[499_999], REPLY.empty)
    assert.equal(lines[999_999], REPLY.empty)
    assert.ok(
      lines.every((line) => line === REPLY.empty),
      'every reply line',
    )
    assert.equal(await withTimeout(next, 'frame after'), 'OK')
    assert.equal(
      await withTimeout(
        other.send('1,0,2,Beside a million lines'),
        'other again',
      ),
      'OK',
    )
    await other.end()
    await big.end()
  })

  test('closes a frame of 1 000 001 lines with 1009', async () => {
    const client = await IngestClient.connect(server.wsUrl)
    await assert.rejects(client.send('\n'.repeat(1_000_001)))
    const closed = await withTimeout(client.closed, '1 000 001 lines')
    assert.equal(closed.code, 1009)
    assert.match(closed.reason, /line/i)
    const health = await withTimeout(getJson(server, '/healthz'), 'healthz')
    assert.equal(health.status, 200)
  })
})

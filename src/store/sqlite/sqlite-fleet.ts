/**
 * What the SQLite store keeps in memory: the state of the robots it has
 * loaded, and a mirror of the log (the events not yet packed into blocks,
 * with their running odometers), linked robot by robot into tails.
 *
 * The process is the database's only writer, so this is the truth the rules
 * are judged against, without a read. It moves forward only after a commit
 * (sqlite-write.ts). A robot is loaded the first time a batch or a read
 * names it (sqlite-load.ts); a start loads only the robots of the log.
 *
 * Memory (issue 10): a robot costs one `Map` entry (name to slot) and one
 * row of {@link FIELDS} doubles in one `Float64Array`, about 180 bytes
 * beside its name, instead of an object with a state object and six arrays.
 * The tails are one structure of arrays indexed by log sequence number, so
 * they cost what the log holds (56 bytes an event), whatever the number of
 * robots.
 */
import type { RobotState } from '../../domain/rules.ts'
import type { EventColumns } from '../block-codec.ts'

/** A robot's events not yet in a block, with their running odometers. */
export interface Tail extends EventColumns {
  readonly total: number[]
  readonly carry: number[]
  /** Each event's log sequence number. */
  readonly seq: number[]
}

// --- a robot's row: one double a field ---

const ID = 0
const CREATED_MS = 1
const UPDATED_MS = 2
const FIRST_TS = 3
const LAST_TS = 4
const LAST_X = 5
const LAST_Y = 6
const ODOMETER = 7
const ODOMETER_CARRY = 8
const EVENT_COUNT = 9
/** The last timestamp stored in a block, -1 when none. */
const SEALED_LAST_TS = 10
/** Log sequence numbers of the tail's first and last events, 0 when empty. */
const TAIL_FIRST = 11
const TAIL_LAST = 12
const TAIL_COUNT = 13
/** Doubles per robot. */
const FIELDS = 14

/**
 * Robots and log rows are held in fixed chunks of this many, never in one
 * array that grows: growing by copying left the freed arrays to the
 * allocator, which did not give them back (RSS 632 MB for 1,000,000
 * robots, of which 141 MB were the arrays themselves).
 */
const CHUNK = 4096

/** The robots of one store, their tails, and the log's bookkeeping. */
export class Fleet {
  /** Loaded robots: name to slot (a row of {@link #rows}). */
  readonly #slots = new Map<string, number>()
  /** Each slot's robot, `undefined` for a free slot. */
  readonly #names: (string | undefined)[] = []
  /** Slots given back by robots that left memory, for reuse. */
  readonly #free: number[] = []
  /** Robots read from the database since {@link releaseLoaded}. */
  #loaded: number[] = []
  /** Robot `slot` is at `(slot % CHUNK) * FIELDS` of chunk `slot / CHUNK`. */
  readonly #rows: Float64Array[] = []
  /**
   * The id of the next new robot. Ids are given once each, 1, 2, 3, …, and
   * a deleted robot's is never given again (sqlite-migrations.ts, robot_ids).
   */
  nextRobotId = 1
  /** How many robots were deleted, of the ids given. */
  deletedRobots = 0
  /** The log sequence number of the next stored event. */
  nextSeq = 1
  /** Robots whose tails hold at least a block, in the order they filled. */
  readonly fullTails = new Set<number>()
  /** Events per block. */
  readonly blockEvents: number
  /** The mirror of the log, from {@link logFloor} to {@link nextSeq}. */
  readonly #log = new LogMirror()

  constructor(blockEvents: number) {
    this.blockEvents = blockEvents
  }

  /** How many robots are in memory. */
  get size(): number {
    return this.#slots.size
  }

  /** How many robots the store holds: the ids given, less those deleted. */
  get robotCount(): number {
    return this.nextRobotId - 1 - this.deletedRobots
  }

  /** Log rows below this sequence number were deleted. */
  get logFloor(): number {
    return this.#log.floor
  }

  /** The slot of a loaded robot, `undefined` when it is not in memory. */
  slotOf(name: string): number | undefined {
    return this.#slots.get(name)
  }

  /**
   * Adds a robot with its stored state; `sealedLastTs` is the last
   * timestamp in its blocks (-1 when none). Returns its slot. A robot read
   * from the database (`loaded`) leaves memory at the next
   * {@link releaseLoaded} unless it has a tail by then.
   */
  addRobot(
    id: number,
    name: string,
    state: RobotState,
    createdMs: number,
    updatedMs: number,
    sealedLastTs = -1,
    loaded = false,
  ): number {
    const slot = this.#free.pop() ?? this.#names.length
    if (slot === this.#rows.length * CHUNK) {
      this.#rows.push(new Float64Array(CHUNK * FIELDS))
    }
    // A copy of its own, exact to the code unit: a name cut from a batch's
    // string of names (threaded-store.ts) would keep that string alive.
    name = JSON.parse(JSON.stringify(name)) as string
    this.#slots.set(name, slot)
    this.#names[slot] = name
    if (loaded) this.#loaded.push(slot)
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    rows[row + ID] = id
    rows[row + CREATED_MS] = createdMs
    rows[row + SEALED_LAST_TS] = sealedLastTs
    rows[row + TAIL_FIRST] = 0
    rows[row + TAIL_LAST] = 0
    rows[row + TAIL_COUNT] = 0
    this.setState(slot, state, updatedMs)
    if (id >= this.nextRobotId) this.nextRobotId = id + 1
    return slot
  }

  id(slot: number): number {
    return this.#chunk(slot)[(slot % CHUNK) * FIELDS + ID]!
  }

  createdMs(slot: number): number {
    return this.#chunk(slot)[(slot % CHUNK) * FIELDS + CREATED_MS]!
  }

  updatedMs(slot: number): number {
    return this.#chunk(slot)[(slot % CHUNK) * FIELDS + UPDATED_MS]!
  }

  sealedLastTs(slot: number): number {
    return this.#chunk(slot)[(slot % CHUNK) * FIELDS + SEALED_LAST_TS]!
  }

  tailCount(slot: number): number {
    return this.#chunk(slot)[(slot % CHUNK) * FIELDS + TAIL_COUNT]!
  }

  /**
   * Lets a robot whose every event is in its blocks leave memory: its
   * state is its last block's, read again when it is next named.
   */
  evict(slot: number): void {
    if (this.tailCount(slot) > 0) throw new Error('a robot with a tail stays')
    this.#slots.delete(this.#names[slot]!)
    this.#names[slot] = undefined
    this.#free.push(slot)
  }

  /**
   * Forgets a deleted robot, tail and all. Its tail's rows stay in the log
   * mirror, as packed rows do, until the floor passes them: no tail starts
   * at them any more ({@link oldestTailFrom}).
   */
  remove(slot: number): void {
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    rows[row + TAIL_FIRST] = 0
    rows[row + TAIL_LAST] = 0
    rows[row + TAIL_COUNT] = 0
    this.fullTails.delete(slot)
    this.evict(slot)
  }

  /**
   * Lets the robots read from the database since the last call leave
   * memory again, those that got no tail meanwhile (a read, or a batch
   * whose events were all duplicates or failed to commit). So memory holds
   * the robots of the log, and no more.
   */
  releaseLoaded(): void {
    const loaded = this.#loaded
    if (loaded.length === 0) return
    this.#loaded = []
    for (const slot of loaded) {
      if (this.#names[slot] !== undefined && this.tailCount(slot) === 0) {
        this.evict(slot)
      }
    }
  }

  /** A robot's state, as the rules take it (a new object each call). */
  stateOf(slot: number): RobotState {
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    return {
      firstTimestamp: rows[row + FIRST_TS]!,
      lastTimestamp: rows[row + LAST_TS]!,
      lastX: rows[row + LAST_X]!,
      lastY: rows[row + LAST_Y]!,
      odometer: rows[row + ODOMETER]!,
      odometerCarry: rows[row + ODOMETER_CARRY]!,
      eventCount: rows[row + EVENT_COUNT]!,
    }
  }

  setState(slot: number, state: RobotState, updatedMs: number): void {
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    rows[row + FIRST_TS] = state.firstTimestamp
    rows[row + LAST_TS] = state.lastTimestamp
    rows[row + LAST_X] = state.lastX
    rows[row + LAST_Y] = state.lastY
    rows[row + ODOMETER] = state.odometer
    rows[row + ODOMETER_CARRY] = state.odometerCarry
    rows[row + EVENT_COUNT] = state.eventCount
    rows[row + UPDATED_MS] = updatedMs
  }

  // --- tails ---

  /**
   * Appends one stored event to its robot's tail, as log row `seq` (above
   * every row appended before), with its running odometer `total + carry`.
   */
  pushToTail(
    slot: number,
    seq: number,
    ts: number,
    x: number,
    y: number,
    total: number,
    carry: number,
  ): void {
    this.#log.put(seq, slot, ts, x, y, total, carry)
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    const count = rows[row + TAIL_COUNT]!
    if (count === 0) rows[row + TAIL_FIRST] = seq
    else this.#log.link(rows[row + TAIL_LAST]!, seq)
    rows[row + TAIL_LAST] = seq
    rows[row + TAIL_COUNT] = count + 1
    if (count + 1 === this.blockEvents) this.fullTails.add(slot)
    if (seq >= this.nextSeq) this.nextSeq = seq + 1
  }

  /** A robot's tail, read out of the log mirror into columns. */
  tail(slot: number): Tail {
    const tail: Tail = { ts: [], x: [], y: [], total: [], carry: [], seq: [] }
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    const n = rows[row + TAIL_COUNT]!
    let seq = rows[row + TAIL_FIRST]!
    for (let i = 0; i < n; i++) {
      this.#log.read(seq, tail)
      seq = this.#log.next(seq)
    }
    return tail
  }

  /**
   * The position stored at `ts` in a robot's tail; `undefined` when its
   * tail has no event there.
   */
  tailPositionAt(
    slot: number,
    ts: number,
  ): { x: number; y: number } | undefined {
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    const n = rows[row + TAIL_COUNT]!
    let seq = rows[row + TAIL_FIRST]!
    for (let i = 0; i < n; i++) {
      const at = this.#log.ts(seq)
      if (at === ts) return this.#log.position(seq)
      if (at > ts) return undefined
      seq = this.#log.next(seq)
    }
    return undefined
  }

  /** The first timestamp of a robot's tail; `undefined` when empty. */
  tailFirstTs(slot: number): number | undefined {
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    if (rows[row + TAIL_COUNT] === 0) return undefined
    return this.#log.ts(rows[row + TAIL_FIRST]!)
  }

  /** Drops the first `count` events of a tail, once they are in blocks. */
  dropFromTail(slot: number, count: number): void {
    const rows = this.#chunk(slot)
    const row = (slot % CHUNK) * FIELDS
    let seq = rows[row + TAIL_FIRST]!
    for (let i = 1; i < count; i++) seq = this.#log.next(seq)
    rows[row + SEALED_LAST_TS] = this.#log.ts(seq)
    const left = rows[row + TAIL_COUNT]! - count
    rows[row + TAIL_COUNT] = left
    rows[row + TAIL_FIRST] = left === 0 ? 0 : this.#log.next(seq)
    if (left === 0) rows[row + TAIL_LAST] = 0
    if (left < this.blockEvents) this.fullTails.delete(slot)
  }

  /**
   * The log sequence number of the oldest tail's first event at or after
   * `from`, with its robot; `undefined` when no tail starts there. Log rows
   * between two tails' first events are events already packed, or rows a
   * start skipped: each is passed over once, as the floor moves past it.
   */
  oldestTailFrom(from: number): { seq: number; slot: number } | undefined {
    for (let seq = Math.max(from, this.#log.floor); seq < this.nextSeq; seq++) {
      const slot = this.#log.slot(seq)
      if (
        slot >= 0 &&
        this.#chunk(slot)[(slot % CHUNK) * FIELDS + TAIL_FIRST] === seq
      ) {
        return { seq, slot }
      }
    }
    return undefined
  }

  #chunk(slot: number): Float64Array {
    return this.#rows[Math.floor(slot / CHUNK)]!
  }

  /** Forgets the log rows below `floor`: they were deleted. */
  cutLog(floor: number): void {
    this.#log.cut(floor)
  }

  /** Sets where the log starts, before a start replays it. */
  startLogAt(floor: number): void {
    this.#log.cut(floor)
    if (floor > this.nextSeq) this.nextSeq = floor
  }
}

// --- the log mirror ---

/** {@link CHUNK} consecutive log rows, as columns. */
interface LogChunk {
  readonly ts: Float64Array
  readonly x: Float64Array
  readonly y: Float64Array
  readonly total: Float64Array
  readonly carry: Float64Array
  /** The sequence number of the robot's next row in the log, 0 for none. */
  readonly next: Float64Array
  /** The robot's slot, -1 for a row that no tail holds. */
  readonly slot: Int32Array
}

function makeChunk(): LogChunk {
  const f64 = () => new Float64Array(CHUNK)
  return {
    ts: f64(),
    x: f64(),
    y: f64(),
    total: f64(),
    carry: f64(),
    next: f64(),
    slot: new Int32Array(CHUNK).fill(-1),
  }
}

/** Dropped chunks of the log's mirror kept for reuse (200 KiB each). */
const SPARE_CHUNKS = 16

/**
 * The log's rows from {@link floor} on, in chunks of {@link CHUNK} rows:
 * row `seq` is at `seq % CHUNK` of chunk `seq / CHUNK`. A chunk wholly
 * below the floor is dropped, so the mirror holds what the log holds, give
 * or take a chunk at each end.
 *
 * Dropped chunks are kept for reuse, up to {@link SPARE_CHUNKS}: a chunk
 * lives as long as the log's window, so one dropped for good waited for a
 * full collection of the store thread, which a steady ingest seldom runs,
 * and tens of megabytes of them were held at once.
 */
class LogMirror {
  /** Rows below it were deleted. */
  floor = 1
  /** The number of the first chunk held (`seq / CHUNK`). */
  #first = 0
  readonly #chunks: LogChunk[] = []
  readonly #spares: LogChunk[] = []

  put(
    seq: number,
    slot: number,
    ts: number,
    x: number,
    y: number,
    total: number,
    carry: number,
  ): void {
    const number = Math.floor(seq / CHUNK)
    if (this.#chunks.length === 0) this.#first = number
    while (this.#first + this.#chunks.length <= number) {
      this.#chunks.push(this.#spares.pop() ?? makeChunk())
    }
    const chunk = this.#chunks[number - this.#first]!
    const i = seq % CHUNK
    chunk.ts[i] = ts
    chunk.x[i] = x
    chunk.y[i] = y
    chunk.total[i] = total
    chunk.carry[i] = carry
    chunk.next[i] = 0
    chunk.slot[i] = slot
  }

  #at(seq: number): LogChunk {
    return this.#chunks[Math.floor(seq / CHUNK) - this.#first]!
  }

  link(from: number, to: number): void {
    this.#at(from).next[from % CHUNK] = to
  }

  next(seq: number): number {
    return this.#at(seq).next[seq % CHUNK]!
  }

  ts(seq: number): number {
    return this.#at(seq).ts[seq % CHUNK]!
  }

  slot(seq: number): number {
    const chunk = this.#chunks[Math.floor(seq / CHUNK) - this.#first]
    return chunk === undefined ? -1 : chunk.slot[seq % CHUNK]!
  }

  position(seq: number): { x: number; y: number } {
    const chunk = this.#at(seq)
    return { x: chunk.x[seq % CHUNK]!, y: chunk.y[seq % CHUNK]! }
  }

  read(seq: number, into: Tail): void {
    const chunk = this.#at(seq)
    const i = seq % CHUNK
    into.seq.push(seq)
    into.ts.push(chunk.ts[i]!)
    into.x.push(chunk.x[i]!)
    into.y.push(chunk.y[i]!)
    into.total.push(chunk.total[i]!)
    into.carry.push(chunk.carry[i]!)
  }

  /** Drops the rows below `floor`: the chunks wholly below it. */
  cut(floor: number): void {
    if (floor <= this.floor) return
    this.floor = floor
    while (this.#chunks.length > 0 && (this.#first + 1) * CHUNK <= floor) {
      const dropped = this.#chunks.shift()!
      this.#first++
      if (this.#spares.length < SPARE_CHUNKS) {
        dropped.slot.fill(-1)
        this.#spares.push(dropped)
      }
    }
  }
}

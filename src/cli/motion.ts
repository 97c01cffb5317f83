/**
 * The motion model of `fleet-telemetry simulate`: robots that drive on a
 * bounded floor (100 m × 60 m by default) the way warehouse robots do.
 * Each one drives legs of a few seconds at a cruise speed (0.4 to 2 m/s),
 * straight or on a gentle curve; between legs it sometimes stops for a few
 * seconds. Speed and turn rate change within acceleration limits, so paths
 * are smooth; a robot heading for a wall turns back toward the middle.
 *
 * The model is seeded and knows no clock: the same seed, robot count and
 * steps give the same positions on every machine (the benchmark can
 * replay a fleet), and each robot draws from its own generator, so robot
 * `sim-002` follows the same path whatever the number of robots.
 *
 * @example
 * const fleet = createFleet({ robots: 3, seed: 42 })
 * fleet.positions() // where they start
 * fleet.step(0.1)   // where they are 100 ms later
 */

// --- the floor and the robots' limits ---

/** The floor, in metres, from (0, 0) to (width, height). */
export interface Floor {
  readonly width: number
  readonly height: number
}

/** The floor of `simulate`: 100 m × 60 m. */
export const DEFAULT_FLOOR: Floor = Object.freeze({ width: 100, height: 60 })

/** No robot ever goes faster, in m/s. */
export const MAX_SPEED = 2
/** The slowest cruise speed of a leg, in m/s. */
const MIN_CRUISE = 0.4
/** Speed change at most, in m/s². */
export const ACCELERATION = 0.8
/** Turn rate at most, in rad/s, and its change, in rad/s². */
export const MAX_TURN_RATE = 0.9
const TURN_ACCELERATION = 0.6
/** A robot heading within this distance of a wall (metres) turns back. */
const WALL_MARGIN = 4
/** A leg lasts this many seconds, and a stop this many. */
const LEG_SECONDS = [3, 10] as const
const STOP_SECONDS = [2, 8] as const
/** The chance that a robot stops after a leg. */
const STOP_CHANCE = 0.3
/** The model integrates in steps of at most this many seconds. */
const SUBSTEP_SECONDS = 0.05

/** Options of {@link createFleet}. */
export interface FleetOptions {
  /** How many robots, at least 1. */
  readonly robots: number
  /** Any integer from 0 to 2^32−1: the same seed, the same fleet. */
  readonly seed: number
  /** Names are `<prefix>-001`, `<prefix>-002`, …; default `sim`. */
  readonly prefix?: string
  readonly floor?: Floor
}

/** A robot's position, to the millimetre. */
export interface RobotPosition {
  readonly robot: string
  readonly x: number
  readonly y: number
}

/** The name of robot `index` (from 0) of `count`: `sim-001`, padded to at least 3 digits. */
export function robotName(
  prefix: string,
  index: number,
  count: number,
): string {
  const width = Math.max(3, String(count).length)
  return `${prefix}-${String(index + 1).padStart(width, '0')}`
}

// --- randomness ---

/** mulberry32: a small seeded generator, the same on every machine. */
class Generator {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }

  between(min: number, max: number): number {
    return min + (max - min) * this.next()
  }
}

/** MurmurHash3's finalizer: a robot's seed from the fleet's seed and its index. */
function mix(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

// --- one robot ---

class Robot {
  readonly name: string
  x: number
  y: number
  readonly #floor: Floor
  readonly #random: Generator
  /** Heading (radians), speed (m/s) and turn rate (rad/s). */
  #heading: number
  #speed = 0
  #turn = 0
  /** What the current leg asks for. */
  #cruise = 0
  #turnTarget = 0
  #stopped = false
  /** Seconds until the next leg or stop. */
  #left: number

  constructor(name: string, seed: number, floor: Floor) {
    this.name = name
    this.#floor = floor
    this.#random = new Generator(seed)
    const r = this.#random
    const margin = Math.min(WALL_MARGIN, floor.width / 4, floor.height / 4)
    this.x = r.between(margin, floor.width - margin)
    this.y = r.between(margin, floor.height - margin)
    this.#heading = r.between(-Math.PI, Math.PI)
    this.#left = 0
    if (r.next() < STOP_CHANCE) {
      this.#stopped = true
      this.#left = r.between(0, STOP_SECONDS[1])
    }
  }

  /** Moves the robot `dt` seconds on. */
  advance(dt: number) {
    // A stop is counted from the moment the robot stands still.
    if (!this.#stopped || this.#speed === 0) this.#left -= dt
    if (this.#left <= 0) this.#decide()

    let targetSpeed = this.#stopped ? 0 : this.#cruise
    let turnTarget = this.#turnTarget
    // Heading for a wall: turn toward the middle of the floor, slower.
    const ahead = 2 + this.#speed * 3
    const nextX = this.x + Math.cos(this.#heading) * ahead
    const nextY = this.y + Math.sin(this.#heading) * ahead
    const { width, height } = this.#floor
    const margin = Math.min(WALL_MARGIN, width / 4, height / 4)
    if (
      nextX < margin ||
      nextX > width - margin ||
      nextY < margin ||
      nextY > height - margin
    ) {
      const toMiddle = Math.atan2(height / 2 - this.y, width / 2 - this.x)
      turnTarget = Math.sign(angle(toMiddle - this.#heading)) * MAX_TURN_RATE
      targetSpeed = Math.min(targetSpeed, 1)
    }

    this.#turn += clamp(turnTarget - this.#turn, TURN_ACCELERATION * dt)
    this.#speed += clamp(targetSpeed - this.#speed, ACCELERATION * dt)
    this.#speed = Math.min(MAX_SPEED, Math.max(0, this.#speed))
    if (this.#stopped && this.#speed < 1e-9) this.#speed = 0
    this.#heading = angle(this.#heading + this.#turn * dt)
    // Clamping to the floor only ever shortens a step.
    this.x = Math.min(
      width,
      Math.max(0, this.x + Math.cos(this.#heading) * this.#speed * dt),
    )
    this.y = Math.min(
      height,
      Math.max(0, this.y + Math.sin(this.#heading) * this.#speed * dt),
    )
  }

  /** The next leg (or a stop, after a leg). */
  #decide() {
    const r = this.#random
    if (!this.#stopped && r.next() < STOP_CHANCE) {
      this.#stopped = true
      this.#turnTarget = 0
      this.#left = r.between(...STOP_SECONDS)
      return
    }
    this.#stopped = false
    this.#cruise = r.between(MIN_CRUISE, MAX_SPEED)
    this.#turnTarget = r.next() < 0.4 ? 0 : r.between(-0.8, 0.8) * MAX_TURN_RATE
    this.#left = r.between(...LEG_SECONDS)
  }
}

function clamp(delta: number, most: number): number {
  return Math.max(-most, Math.min(most, delta))
}

/** An angle brought into (−π, π]. */
function angle(a: number): number {
  const turned = a - 2 * Math.PI * Math.floor((a + Math.PI) / (2 * Math.PI))
  return turned === -Math.PI ? Math.PI : turned
}

function millimetres(value: number): number {
  return Math.round(value * 1000) / 1000
}

// --- the fleet ---

/** A seeded fleet; see the module's comment. */
export class Fleet {
  /** The robots' names, in order. */
  readonly names: readonly string[]
  readonly floor: Floor
  readonly #robots: Robot[]

  constructor(options: FleetOptions) {
    if (!Number.isInteger(options.robots) || options.robots < 1) {
      throw new RangeError('robots must be a positive integer')
    }
    this.floor = Object.freeze({ ...(options.floor ?? DEFAULT_FLOOR) })
    const prefix = options.prefix ?? 'sim'
    this.#robots = Array.from(
      { length: options.robots },
      (_, i) =>
        new Robot(
          robotName(prefix, i, options.robots),
          mix(options.seed, i),
          this.floor,
        ),
    )
    this.names = Object.freeze(this.#robots.map((r) => r.name))
  }

  /** Where every robot is now, to the millimetre. */
  positions(): RobotPosition[] {
    return this.#robots.map((r) => ({
      robot: r.name,
      x: millimetres(r.x),
      y: millimetres(r.y),
    }))
  }

  /** Moves every robot `seconds` on and returns where they are then. */
  step(seconds: number): RobotPosition[] {
    if (!(seconds > 0)) throw new RangeError('a step must last more than 0 s')
    const substeps = Math.ceil(seconds / SUBSTEP_SECONDS)
    const dt = seconds / substeps
    for (const robot of this.#robots) {
      for (let i = 0; i < substeps; i++) robot.advance(dt)
    }
    return this.positions()
  }
}

/** A seeded fleet of `options.robots` robots on the floor. */
export function createFleet(options: FleetOptions): Fleet {
  return new Fleet(options)
}

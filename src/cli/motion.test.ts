import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ACCELERATION,
  createFleet,
  DEFAULT_FLOOR,
  MAX_SPEED,
  MAX_TURN_RATE,
  robotName,
  type RobotPosition,
} from './motion.ts'

/** Positions to the millimetre: each coordinate is off by at most half of one. */
const ROUNDING = Math.SQRT2 * 0.001

/** `steps` steps of `dt` seconds, with the start: one track per robot. */
function tracks(
  robots: number,
  seed: number,
  steps: number,
  dt: number,
): RobotPosition[][] {
  const fleet = createFleet({ robots, seed })
  const all = [fleet.positions()]
  for (let k = 0; k < steps; k++) all.push(fleet.step(dt))
  return fleet.names.map((_, i) => all.map((positions) => positions[i]!))
}

const distance = (a: RobotPosition, b: RobotPosition) =>
  Math.hypot(b.x - a.x, b.y - a.y)

/** The change of heading at `b` on the way from `a` to `c`, in radians. */
const angle = (a: RobotPosition, b: RobotPosition, c: RobotPosition) =>
  Math.abs(
    Math.atan2(
      (b.x - a.x) * (c.y - b.y) - (b.y - a.y) * (c.x - b.x),
      (b.x - a.x) * (c.x - b.x) + (b.y - a.y) * (c.y - b.y),
    ),
  )

describe('the motion model of simulate', () => {
  it('should name robots sim-001, sim-002, … with at least three digits', () => {
    assert.deepEqual(createFleet({ robots: 3, seed: 1 }).names, [
      'sim-001',
      'sim-002',
      'sim-003',
    ])
    assert.equal(robotName('bay', 1233, 5000), 'bay-1234')
    assert.equal(robotName('bay', 0, 12345), 'bay-00001')
    assert.deepEqual(createFleet({ robots: 1, seed: 1, prefix: 'x' }).names, [
      'x-001',
    ])
  })

  it('should give the same positions for the same seed, and other ones for another seed', () => {
    assert.deepStrictEqual(tracks(5, 42, 300, 0.1), tracks(5, 42, 300, 0.1))
    assert.notDeepStrictEqual(tracks(5, 42, 10, 0.1), tracks(5, 43, 10, 0.1))
  })

  it("should move a robot the same way whatever the fleet's size", () => {
    const small = tracks(2, 7, 200, 0.1)
    const large = tracks(20, 7, 200, 0.1)
    assert.deepStrictEqual(small[1], large[1])
  })

  it('should write positions to the millimetre', () => {
    for (const track of tracks(10, 3, 50, 0.1)) {
      for (const { x, y } of track) {
        assert.equal(Math.round(x * 1000) / 1000, x)
        assert.equal(Math.round(y * 1000) / 1000, y)
      }
    }
  })

  // Ten minutes of 20 robots at 10 Hz: 120,000 steps.
  const dt = 0.1
  const fleetTracks = tracks(20, 20260131, 6000, dt)

  it('should keep every robot on the floor and never faster than the top speed', () => {
    for (const track of fleetTracks) {
      for (let k = 0; k < track.length; k++) {
        const p = track[k]!
        assert.ok(p.x >= 0 && p.x <= DEFAULT_FLOOR.width, `x ${p.x}`)
        assert.ok(p.y >= 0 && p.y <= DEFAULT_FLOOR.height, `y ${p.y}`)
        if (k === 0) continue
        const step = distance(track[k - 1]!, p)
        assert.ok(
          step <= MAX_SPEED * dt + ROUNDING,
          `${p.robot} step ${k}: ${step} m in ${dt} s`,
        )
      }
    }
  })

  it('should change speed and heading smoothly', () => {
    // From rounded positions: speeds are known to ±2 mm a step.
    const speedNoise = (2 * ROUNDING) / dt
    for (const track of fleetTracks) {
      for (let k = 2; k < track.length; k++) {
        const [a, b, c] = [track[k - 2]!, track[k - 1]!, track[k]!]
        const before = distance(a, b)
        const after = distance(b, c)
        assert.ok(
          Math.abs(after - before) / dt <= ACCELERATION * dt + speedNoise,
          `${c.robot} step ${k}: from ${before / dt} to ${after / dt} m/s`,
        )
        // A heading is only known from a step long enough to beat the rounding.
        if (before < 0.05 || after < 0.05) continue
        const turn = angle(a, b, c)
        const slack = Math.asin(Math.min(1, (2 * ROUNDING) / 0.05)) * 2
        assert.ok(
          turn <= MAX_TURN_RATE * dt + slack,
          `${c.robot} step ${k}: turned ${turn} rad`,
        )
      }
    }
  })

  it('should make every robot drive, turn and stop for seconds at a time', () => {
    for (const track of fleetTracks) {
      const robot = track[0]!.robot
      let still = 0
      let stops = 0
      let moving = 0
      let turning = 0
      for (let k = 1; k < track.length; k++) {
        const step = distance(track[k - 1]!, track[k]!)
        if (step === 0) {
          // A stop: at least two seconds on the same spot.
          if (++still === 2 / dt) stops++
        } else {
          still = 0
          if (step > 0.05) moving++
        }
        // Turning: the heading of one second's travel differs from the last second's.
        if (k >= 20 && k % 10 === 0) {
          const [a, b, c] = [track[k - 20]!, track[k - 10]!, track[k]!]
          if (
            distance(a, b) > 0.5 &&
            distance(b, c) > 0.5 &&
            angle(a, b, c) > 0.1
          ) {
            turning++
          }
        }
      }
      assert.ok(stops >= 5, `${robot}: ${stops} stops in ten minutes`)
      assert.ok(moving >= track.length / 3, `${robot}: moving ${moving} steps`)
      assert.ok(turning >= 60, `${robot}: turning in ${turning} seconds`)
    }
  })

  it('should refuse a fleet without robots and a step without time', () => {
    assert.throws(() => createFleet({ robots: 0, seed: 1 }), RangeError)
    assert.throws(() => createFleet({ robots: 1, seed: 1 }).step(0), RangeError)
  })
})

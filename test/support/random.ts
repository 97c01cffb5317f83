/**
 * Seeded randomness: one generator (mulberry32) and one seed per run. The
 * seed comes from `TEST_SEED` (to replay a run) or is drawn fresh; a suite
 * prints it with its diagnostics and in its failure messages, so that
 * `TEST_SEED=<seed> npm test` sends the same traffic again. A `TEST_SEED`
 * that is not an integer from 0 to 2^32−1 is an error, never a silent 0.
 *
 * @example
 * const seed = testSeed()
 * const random = Random.derive(seed, 1)
 * random.int(1, 6) // a die
 */
import { randomInt } from 'node:crypto'

/** The environment variable that fixes the seed of a run. */
export const SEED_VARIABLE = 'TEST_SEED'

/** Largest seed: the generator's state is 32 bits. */
export const MAX_SEED = 2 ** 32 - 1

/**
 * Reads a seed written as decimal digits, from 0 to {@link MAX_SEED}.
 * Throws on anything else (a sign, a fraction, an exponent, white space,
 * a number too large), naming `source`.
 */
export function parseSeed(text: string, source = SEED_VARIABLE): number {
  if (!/^[0-9]+$/.test(text) || Number(text) > MAX_SEED) {
    throw new Error(
      `${source} must be an integer from 0 to ${MAX_SEED}, not ${JSON.stringify(text)}`,
    )
  }
  return Number(text)
}

/**
 * The seed of this run: `TEST_SEED` when it is set and not empty (parsed by
 * {@link parseSeed}, so a bad value throws), else a fresh random one.
 */
export function testSeed(
  env: Readonly<Record<string, string | undefined>> = process.env,
): number {
  const text = env[SEED_VARIABLE]
  if (text === undefined || text === '') return randomInt(MAX_SEED + 1)
  return parseSeed(text)
}

/** How messages name a seed: `seed 42 (TEST_SEED=42 replays it)`. */
export function seedNote(seed: number): string {
  return `seed ${seed} (${SEED_VARIABLE}=${seed} replays it)`
}

/** MurmurHash3's finalizer: spreads the bits of a 32-bit integer. */
function mix32(value: number): number {
  let h = value >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/**
 * A small seeded generator (mulberry32): the same seed gives the same
 * numbers, on every machine.
 */
export class Random {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /**
   * The generator of one part (`stream`) of a run: the same whatever the
   * other parts draw, and unrelated to the other streams of the seed.
   */
  static derive(seed: number, stream: number): Random {
    return new Random(mix32(seed ^ mix32(stream + 1)))
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** An integer from `min` to `max`, both included. */
  int(min: number, max: number): number {
    return min + this.below(max - min + 1)
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p
  }

  /** One of `items`, which must not be empty. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[this.below(items.length)]!
  }

  /** A key of `weights`, with a probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][]
    const total = entries.reduce((sum, [, weight]) => sum + weight, 0)
    let r = this.next() * total
    for (const [key, weight] of entries) {
      r -= weight
      if (r < 0) return key
    }
    return entries[entries.length - 1]![0]
  }

  /** `n` random bytes; those in `exclude` become 0x41 (`A`). */
  bytes(n: number, exclude: readonly number[] = []): Buffer {
    const out = Buffer.alloc(n)
    for (let i = 0; i < n; i++) {
      const byte = this.below(256)
      out[i] = exclude.includes(byte) ? 0x41 : byte
    }
    return out
  }

  /** A string of `n` characters drawn from `alphabet` (by code point). */
  string(n: number, alphabet: string): string {
    const chars = [...alphabet]
    let out = ''
    for (let i = 0; i < n; i++) out += this.pick(chars)
    return out
  }

  /** A generator of its own, so that one consumer does not shift another's draws. */
  fork(): Random {
    return new Random(this.below(2 ** 32))
  }
}

/**
 * Waiting without betting on the machine's speed: a test waits for the event
 * itself (a reply, a log line, a counter reaching a value), and a generous
 * safety timeout only turns a real stall into a loud failure. A slow or
 * loaded machine makes a test slower, never red.
 */

/**
 * How long anything may take before it counts as a stall: far beyond what
 * a loaded machine needs, far below the runner's own test timeout.
 */
export const SAFETY_TIMEOUT_MS = 60_000

/** Resolves with `promise`, or rejects naming `what` after `ms`. */
export async function withTimeout<T>(
  promise: Promise<T>,
  what: string,
  ms = SAFETY_TIMEOUT_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: nothing after ${ms} ms (a stall)`)),
      ms,
    )
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** Give up (and throw) after this long; default {@link SAFETY_TIMEOUT_MS}. */
  readonly timeoutMs?: number
  /** Pause between two checks; default 20 ms. */
  readonly intervalMs?: number
}

/**
 * Checks `check` until it returns something other than `undefined` or
 * `false`, and returns that. Throws, naming `what` and the last value seen,
 * when the safety timeout passes first.
 *
 * @example
 * await waitFor(() => server.stderr().includes('connection closed') || undefined,
 *   'the close is logged')
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? SAFETY_TIMEOUT_MS
  const intervalMs = options.intervalMs ?? 20
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (performance.now() > deadline) {
      throw new Error(`${what}: still not so after ${timeoutMs} ms`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** Runs `fn` over `items`, at most `limit` at a time, and keeps the order. */
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
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  )
  return results
}

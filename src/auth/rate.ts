/**
 * Per-token limits on events a second (docs/security.md, "Abuse"): a token
 * bucket per token name, shared by all the connections of that token. A
 * bucket holds at most one second of events, so a token that was quiet may
 * send one second's worth at once, and no more than its rate after that.
 */
export class TokenBuckets {
  readonly perSecond: number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(perSecond: number) {
    this.perSecond = perSecond
  }

  /** Takes one event from `name`'s bucket at `now` (ms); false when it is empty. */
  take(name: string, now: number): boolean {
    const rate = this.perSecond
    let bucket = this.#buckets.get(name)
    if (bucket === undefined) {
      bucket = { tokens: rate, at: now }
      this.#buckets.set(name, bucket)
    } else if (now > bucket.at) {
      bucket.tokens = Math.min(
        rate,
        bucket.tokens + ((now - bucket.at) * rate) / 1000,
      )
      bucket.at = now
    }
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }
}

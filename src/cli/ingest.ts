/**
 * What `simulate` and `replay` share around the client library: the
 * connection told in words for the status line, the upgrade refusals that
 * no retry can mend, the tally of outcomes and the summary's words.
 */
import type { ConnectionStatus, OutcomeStatus } from '../client/client.ts'

/**
 * Answers to the upgrade that no retry changes: no or a wrong token (401),
 * a token of the wrong role (403), no ingest endpoint at that path (404).
 * 429 and 503 pass with time, and the client retries them.
 */
const REFUSED = new Set([401, 403, 404])

const REFUSAL_HINTS: Readonly<Record<number, string>> = {
  401: 'a token of role ingest or admin is needed (--token or TELEMETRY_TOKEN)',
  403: 'the token may not ingest (role ingest or admin is needed)',
  404: 'no ingest endpoint there (is --url the server?)',
}

/** Follows the client's connection (`onStatus`) for the status line. */
export class ConnectionWatch {
  #status: ConnectionStatus = { state: 'connecting' }
  #since = performance.now()
  #refused: ((message: string) => void) | undefined
  /** Resolves with a message once the server refuses the upgrade for good. */
  readonly refused: Promise<string>

  constructor() {
    this.refused = new Promise((resolve) => (this.#refused = resolve))
  }

  /** The client's `onStatus`. */
  readonly onStatus = (status: ConnectionStatus): void => {
    this.#status = status
    this.#since = performance.now()
    const refusal = status.httpStatus
    if (refusal !== undefined && REFUSED.has(refusal)) {
      this.#refused?.(
        `the server refused the connection: ${refusal}: ${REFUSAL_HINTS[refusal]}`,
      )
    }
  }

  get connected(): boolean {
    return this.#status.state === 'open'
  }

  /** `connected`, `connecting`, or `reconnecting in 1.2 s (connect ECONNREFUSED …)`. */
  describe(): string {
    const status = this.#status
    if (status.state === 'open') return 'connected'
    if (status.state === 'waiting') {
      const left = Math.max(
        0,
        (status.retryInMs ?? 0) - (performance.now() - this.#since),
      )
      return `reconnecting in ${(left / 1000).toFixed(1)} s (${status.error ?? 'connection lost'})`
    }
    return status.state
  }
}

/** Every outcome, in the order the summary lists them. */
export const OUTCOMES: readonly OutcomeStatus[] = [
  'stored',
  'duplicate',
  'stale',
  'conflict',
  'malformed',
  'forbidden',
  'rejected',
  'dropped',
  'unsent',
] as const

/** Counts of outcomes. */
export class Tally {
  readonly counts: Record<OutcomeStatus, number> = {
    stored: 0,
    duplicate: 0,
    stale: 0,
    conflict: 0,
    malformed: 0,
    forbidden: 0,
    rejected: 0,
    dropped: 0,
    unsent: 0,
  }

  add(status: OutcomeStatus): void {
    this.counts[status]++
  }

  /** Outcomes counted so far. */
  get total(): number {
    return OUTCOMES.reduce((sum, status) => sum + this.counts[status], 0)
  }

  /** Stored or duplicate: in the store. */
  get delivered(): number {
    return this.counts.stored + this.counts.duplicate
  }

  /** Every other outcome. */
  get failed(): number {
    return this.total - this.delivered
  }

  /**
   * `990 stored, 10 duplicate`; with nothing stored,
   * `nothing new stored (1000 duplicate)`.
   */
  describe(): string {
    const parts = OUTCOMES.filter((s) => this.counts[s] > 0).map(
      (s) => `${this.counts[s]} ${s}`,
    )
    if (this.counts.stored > 0 || parts.length === 0) {
      return parts.join(', ') || 'nothing sent'
    }
    return `nothing new stored (${parts.join(', ')})`
  }
}

/**
 * The server-wide budget of ingest memory: the bytes of every frame
 * received and not yet answered (the frame, its parsed events, its place in
 * the batcher's queue) and of every reply not yet written to its socket.
 *
 * Connections are the budget's members. Each counts what it holds and
 * decides itself whether to keep reading (upstream.ts): while the server is
 * over its budget, a connection holding at least its share (the budget
 * divided by the open connections) stops being read, and lighter ones go
 * on. So the heaviest connections wait first: a flood from a few clients,
 * or a client that does not read its replies, does not stall the robots
 * that send a line now and then. Nothing is dropped: a paused connection's
 * frames wait in its socket, and it is read again once the server is below
 * three quarters of its budget or the connection below half of its share.
 */

/** A connection under the budget. */
export interface BudgetMember {
  /** Decides again whether to read, after the server crossed its budget. */
  reconsider(): void
}

/**
 * What one line of a frame costs in memory while it waits and is
 * committed, beyond the frame's own bytes. A waiting frame holds its bytes
 * and, once read, a byte a line for its reply (upstream.ts, frame.ts); a
 * line read into a batch becomes an event object until its commit, and
 * garbage after. Under the flood of flood.e2e.test.ts at full size, with
 * 48 bytes a line the budget counted 24 MiB while the main thread held
 * 30-35 MiB above its rest: the count is not generous.
 */
export const LINE_COST_BYTES = 48

/** Past this fraction of the budget, every member stops. */
const FULL_FRACTION = 1.5

/** The server is back under its budget below this fraction of it. */
const RESUME_FRACTION = 0.75

/** The bytes in flight of every ingest connection, against one limit. */
export class InflightBudget {
  /** The budget in bytes. */
  readonly limit: number
  readonly #members = new Set<BudgetMember>()
  #bytes = 0
  #over = false
  /** Whether members were last told the server is full. */
  #full = false

  constructor(limit: number) {
    this.limit = limit
  }

  /** Bytes held now, by every member. */
  get bytes(): number {
    return this.#bytes
  }

  /** Whether the server is over its budget (until it is back under 3/4). */
  get over(): boolean {
    return this.#over
  }

  /**
   * Whether the server holds its budget and half again: then every member
   * stops, also those under their share, so that many connections each
   * under its share cannot take the server far past its budget.
   */
  get full(): boolean {
    return this.#bytes >= this.limit * FULL_FRACTION
  }

  /** What one member may hold while the server is over its budget. */
  get share(): number {
    return this.limit / Math.max(1, this.#members.size)
  }

  join(member: BudgetMember): void {
    this.#members.add(member)
  }

  leave(member: BudgetMember): void {
    this.#members.delete(member)
  }

  /** Counts bytes a member took. */
  hold(bytes: number): void {
    this.#bytes += bytes
    if (!this.#over && this.#bytes >= this.limit) {
      this.#over = true
      this.#full = this.full
      this.#reconsiderAll()
    } else if (!this.#full && this.full) {
      this.#full = true
      this.#reconsiderAll()
    }
  }

  /** Counts bytes a member let go of. */
  release(bytes: number): void {
    this.#bytes -= bytes
    if (this.#over && this.#bytes < this.limit * RESUME_FRACTION) {
      this.#over = false
      this.#full = false
      this.#reconsiderAll()
    } else if (this.#full && !this.full) {
      // Members stopped only because the server was full, holding little
      // themselves, may go on: nothing of theirs would tell them.
      this.#full = false
      this.#reconsiderAll()
    }
  }

  #reconsiderAll() {
    for (const member of this.#members) member.reconsider()
  }
}

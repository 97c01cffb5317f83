/**
 * Group commit: the events of all connections go into one batch, which the
 * store commits in one transaction; replies are written only after that.
 *
 * A batch is flushed on the event loop's next check phase after its first
 * event (`setImmediate`), so every frame read in one I/O phase shares a
 * commit and no timer adds latency. While a commit is in flight the next
 * batch fills up; under load batches grow by themselves.
 *
 * Frames wait in the queue as they came, their lines unparsed: a line
 * becomes an event object only when the next batch is built (at most
 * `maxBatch` of them ahead of the commit in flight). A deep queue then
 * holds a frame's bytes and little more, and costs nothing per commit.
 */
import type { TelemetryEvent } from '../domain/event.ts'
import type { Outcome } from '../domain/rules.ts'
import type { Store } from '../store/store.ts'

/** Whoever waits for the replies of some events of a batch. */
export interface BatchTarget<Slot = unknown> {
  /**
   * Called once per event, in the order the events were added, after the
   * commit; `outcome` is `undefined` when the commit failed.
   */
  settle(slot: Slot, outcome: Outcome | undefined): void
  /** Called once per batch for each target after all its events settled. */
  settled(): void
}

/** Options of {@link createBatcher}. */
export interface BatcherOptions {
  /** Largest number of events committed in one transaction. */
  readonly maxBatch?: number
  /**
   * Told of a failed commit (`queued` false), then of the events queued
   * behind it (`queued` true); all of them settle with `undefined`.
   */
  readonly onCommitError?: (
    error: unknown,
    events: number,
    queued: boolean,
  ) => void
  /** Told of each committed batch: its size and how long the commit took. */
  readonly onCommit?: (events: number, ms: number) => void
}

/**
 * Lines waiting for a batch, such as one frame: read in order, a few at a
 * time, only when a batch is built.
 */
export interface EventSource<Slot = unknown> {
  /** Told of the outcomes of this source's events. */
  readonly target: BatchTarget<Slot>
  /** Lines not read yet: at most this many events are left. */
  readonly remaining: number
  /**
   * Reads lines until `max` events were pushed or no line is left, and
   * says whether none is left.
   */
  read(max: number, push: (event: TelemetryEvent, slot: Slot) => void): boolean
}

/** Collects events from every connection and commits them in batches. */
export interface Batcher {
  /**
   * Queues a source's events; `target.settle(slot, …)` is called for each
   * after its commit. Once the source is read to its end, the target is
   * also told `settled()` when that last read found no event.
   */
  add(source: EventSource): void
  /**
   * Events read and not yet committed, including those in flight, and
   * lines not read yet.
   */
  readonly pending: number
  /** Resolves once every queued event has been committed and settled. */
  drain(): Promise<void>
}

/**
 * Creates the batcher in front of a store.
 *
 * @example
 * const batcher = createBatcher(store, { maxBatch: 5000 })
 * batcher.add(frame) // frame: an EventSource
 */
export function createBatcher(
  store: Store,
  options: BatcherOptions = {},
): Batcher {
  const maxBatch = options.maxBatch ?? 5000
  /** Sources not read to their end, oldest first, from `head`. */
  let sources: EventSource[] = []
  let head = 0
  /** Lines of `sources` not read yet. */
  let unread = 0
  /** The next batch, read ahead while the commit before it is in flight. */
  let events: TelemetryEvent[] = []
  let targets: BatchTarget[] = []
  let slots: unknown[] = []
  let scheduled = false
  let inFlight = 0
  let idle: (() => void)[] = []

  function schedule() {
    if (scheduled || inFlight > 0 || events.length === 0) return
    scheduled = true
    setImmediate(flush)
  }

  /** The target of the source being read. */
  let target: BatchTarget | undefined
  const push = (event: TelemetryEvent, slot: unknown) => {
    events.push(event)
    targets.push(target!)
    slots.push(slot)
  }

  /** Reads sources into the next batch until it holds `max` events. */
  function read(max: number) {
    while (events.length < max && head < sources.length) {
      const source = sources[head]!
      target = source.target
      const before = events.length
      const remaining = source.remaining
      const done = source.read(max - events.length, push)
      unread -= remaining - source.remaining
      if (!done) break
      sources[head++] = undefined as unknown as EventSource
      // Its frame may be answered already: its other events settled.
      if (events.length === before) target.settled()
    }
    target = undefined
    if (head === sources.length) {
      sources.length = 0
      head = 0
    } else if (head > 1024 && head > sources.length / 2) {
      sources = sources.slice(head)
      head = 0
    }
  }

  async function flush() {
    scheduled = false
    const batch = events
    const batchTargets = targets
    const batchSlots = slots
    const n = batch.length
    events = []
    targets = []
    slots = []
    inFlight = n

    let outcomes: Outcome[] | undefined
    const started = performance.now()
    const appended = store.append(batch)
    // The next batch is read while this one commits: after it has left for
    // the store thread, not before.
    read(maxBatch)
    try {
      outcomes = await appended
      options.onCommit?.(n, performance.now() - started)
    } catch (error) {
      options.onCommitError?.(error, n, false)
    }
    inFlight = 0

    const touched = new Set<BatchTarget>()
    const settleAll = (eventTargets: BatchTarget[], eventSlots: unknown[]) => {
      for (let i = 0; i < eventTargets.length; i++) {
        const target = eventTargets[i]!
        target.settle(eventSlots[i]!, outcomes?.[i])
        touched.add(target)
      }
    }
    settleAll(batchTargets, batchSlots)
    if (outcomes === undefined && (events.length > 0 || unread > 0)) {
      // Everything queued behind a failed commit fails with it. Committing
      // it would move robots past the failed events, and their resends
      // would then be stale instead of stored.
      read(Infinity)
      const failedTargets = targets
      const failedSlots = slots
      events = []
      targets = []
      slots = []
      options.onCommitError?.(
        new Error('queued behind a failed commit'),
        failedTargets.length,
        true,
      )
      settleAll(failedTargets, failedSlots)
    }
    for (const target of touched) target.settled()

    read(maxBatch)
    if (events.length > 0) {
      schedule()
    } else {
      const waiting = idle
      idle = []
      for (const resolve of waiting) resolve()
    }
  }

  return {
    add(source) {
      sources.push(source)
      unread += source.remaining
      read(maxBatch)
      schedule()
    },
    get pending() {
      return events.length + inFlight + unread
    },
    drain() {
      if (events.length === 0 && inFlight === 0 && unread === 0) {
        return Promise.resolve()
      }
      return new Promise((resolve) => idle.push(resolve))
    },
  }
}

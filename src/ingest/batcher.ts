/**
 * Group commit: the events of all connections go into one batch, which the
 * store commits in one transaction; replies are written only after that.
 *
 * A batch is flushed on the event loop's next check phase after its first
 * event (`setImmediate`), so every frame read in one I/O phase shares a
 * commit and no timer adds latency. While a commit is in flight the next
 * batch fills up; under load batches grow by themselves.
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

/** Collects events from every connection and commits them in batches. */
export interface Batcher {
  /** Queues one event; `target.settle(slot, …)` is called after its commit. */
  add<Slot>(event: TelemetryEvent, target: BatchTarget<Slot>, slot: Slot): void
  /** Events queued and not yet committed, including those in flight. */
  readonly pending: number
  /** Resolves once every queued event has been committed and settled. */
  drain(): Promise<void>
}

/**
 * Creates the batcher in front of a store.
 *
 * @example
 * const batcher = createBatcher(store, { maxBatch: 10_000 })
 * batcher.add(event, frame, 0)
 */
export function createBatcher(
  store: Store,
  options: BatcherOptions = {},
): Batcher {
  const maxBatch = options.maxBatch ?? 10_000
  let events: TelemetryEvent[] = []
  let targets: BatchTarget[] = []
  let slots: unknown[] = []
  let scheduled = false
  let inFlight = 0
  let idle: (() => void)[] = []

  function schedule() {
    if (scheduled || inFlight > 0) return
    scheduled = true
    setImmediate(flush)
  }

  async function flush() {
    scheduled = false
    const n = Math.min(events.length, maxBatch)
    const batch = events
    const batchTargets = targets
    const batchSlots = slots
    if (n === events.length) {
      events = []
      targets = []
      slots = []
    } else {
      events = batch.splice(n)
      targets = batchTargets.splice(n)
      slots = batchSlots.splice(n)
    }
    inFlight = n

    let outcomes: Outcome[] | undefined
    const started = performance.now()
    try {
      outcomes = await store.append(batch)
      options.onCommit?.(n, performance.now() - started)
    } catch (error) {
      options.onCommitError?.(error, n, false)
    }
    inFlight = 0

    const touched = new Set<BatchTarget>()
    const settleAll = (
      eventTargets: BatchTarget[],
      eventSlots: unknown[],
      count: number,
    ) => {
      for (let i = 0; i < count; i++) {
        const target = eventTargets[i]!
        target.settle(eventSlots[i]!, outcomes?.[i])
        touched.add(target)
      }
    }
    settleAll(batchTargets, batchSlots, n)
    if (outcomes === undefined && events.length > 0) {
      // Everything queued behind a failed commit fails with it. Committing
      // it would move robots past the failed events, and their resends
      // would then be stale instead of stored.
      const failedTargets = targets
      const failedSlots = slots
      const failed = events.length
      events = []
      targets = []
      slots = []
      options.onCommitError?.(
        new Error('queued behind a failed commit'),
        failed,
        true,
      )
      settleAll(failedTargets, failedSlots, failed)
    }
    for (const target of touched) target.settled()

    if (events.length > 0) {
      schedule()
    } else {
      const waiting = idle
      idle = []
      for (const resolve of waiting) resolve()
    }
  }

  return {
    add(event, target, slot) {
      events.push(event)
      targets.push(target as BatchTarget)
      slots.push(slot)
      schedule()
    },
    get pending() {
      return events.length + inFlight
    },
    drain() {
      if (events.length === 0 && inFlight === 0) return Promise.resolve()
      return new Promise((resolve) => idle.push(resolve))
    },
  }
}

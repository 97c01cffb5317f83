/**
 * The listeners of {@link Store.watch} of one store, for the backends that
 * learn of their commits in-process (SQLite): they tell these after each
 * commit.
 */
import type { TelemetryEvent } from '../domain/event.ts'
import type { Outcome } from '../domain/rules.ts'
import type { CommitListener, StoredEvent, Unwatch } from './store.ts'

/** A set of {@link CommitListener}s. */
export class CommitWatchers {
  readonly #listeners = new Set<CommitListener>()

  /** Whether anyone listens: a commit builds its {@link StoredEvent}s only then. */
  get active(): boolean {
    return this.#listeners.size > 0
  }

  add(listener: CommitListener): Unwatch {
    // A wrapper per call: the same listener added twice is told twice,
    // and each unwatch removes its own.
    const entry: CommitListener = {
      committed: (events) => listener.committed(events),
      missed: () => listener.missed(),
    }
    this.#listeners.add(entry)
    return () => void this.#listeners.delete(entry)
  }

  /** Tells every listener of one commit's stored events. */
  committed(events: readonly StoredEvent[]): void {
    if (events.length === 0) return
    for (const listener of this.#listeners) listener.committed(events)
  }

  /** Tells every listener that commits may have gone by unheard. */
  missed(): void {
    for (const listener of this.#listeners) listener.missed()
  }

  /**
   * Tells every listener of one committed batch: its events, their
   * outcomes, and the lifetime odometer of each accepted event in batch
   * order ({@link acceptedOdometers}).
   */
  batch(
    events: readonly TelemetryEvent[],
    outcome: (i: number) => Outcome,
    odometers: ArrayLike<number>,
  ): void {
    if (!this.active || odometers.length === 0) return
    const stored = new Array<StoredEvent>(odometers.length)
    let k = 0
    for (let i = 0; i < events.length; i++) {
      if (outcome(i) !== 'ok') continue
      const event = events[i]!
      stored[k] = {
        robot: event.robot,
        x: event.x,
        y: event.y,
        timestamp: event.timestamp,
        odometer: odometers[k]!,
      }
      k++
    }
    this.committed(stored)
  }
}

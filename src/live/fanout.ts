/**
 * One watch of the store shared by everything live: the SSE feed
 * (feed.ts) and the Foxglove endpoint (robotics/foxglove.ts) each add a
 * listener here, and the store is watched once while any listener is in
 * place (on PostgreSQL, one LISTEN and one read of each commit's events,
 * however many live clients there are).
 */
import type { CommitListener, Store, Unwatch } from '../store/store.ts'

/** What tells of commits: a store, or a {@link CommitFanout} over one. */
export type CommitSource = Pick<Store, 'watch'>

/** Fans one {@link Store.watch} out to many listeners. */
export class CommitFanout implements CommitSource {
  readonly #store: CommitSource
  readonly #listeners = new Set<CommitListener>()
  /** The store watch while a listener is in place; a new one after each stop. */
  #watching: Promise<Unwatch> | undefined

  constructor(store: CommitSource) {
    this.#store = store
  }

  /** Listeners in place now. */
  get size(): number {
    return this.#listeners.size
  }

  /**
   * Tells `listener` of every commit from now on; resolves once the store
   * is watched (a commit that ends after that is told), rejects when the
   * store cannot be watched (the next call tries again).
   */
  async watch(listener: CommitListener): Promise<Unwatch> {
    // Each listener is its own object: one added twice is told twice.
    const own: CommitListener = {
      committed: (events) => listener.committed(events),
      missed: () => listener.missed(),
    }
    this.#listeners.add(own)
    try {
      await this.#start()
    } catch (error) {
      this.#listeners.delete(own)
      throw error
    }
    return () => {
      if (this.#listeners.delete(own) && this.#listeners.size === 0) {
        this.#stop()
      }
    }
  }

  #start(): Promise<Unwatch> {
    if (this.#watching !== undefined) return this.#watching
    const watching = this.#store.watch({
      // Told only while this watch is the current one: a watch still
      // starting when the last listener left is stopped once started.
      committed: (events) => {
        if (this.#watching !== watching) return
        for (const listener of this.#listeners) listener.committed(events)
      },
      missed: () => {
        if (this.#watching !== watching) return
        for (const listener of this.#listeners) listener.missed()
      },
    })
    this.#watching = watching
    watching.catch(() => {
      if (this.#watching === watching) this.#watching = undefined
    })
    return watching
  }

  #stop() {
    const watching = this.#watching
    if (watching === undefined) return
    this.#watching = undefined
    watching.then((unwatch) => unwatch()).catch(() => {})
  }
}

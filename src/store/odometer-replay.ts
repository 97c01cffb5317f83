/**
 * The lifetime odometer at each event of a robot's stored events read back
 * page by page, the same for every backend and every reader (the live
 * feed's replay, the MCAP export).
 */
import { addStep, distance, type RunningTotal } from '../domain/rules.ts'
import type { EventPage, Store } from './store.ts'

/**
 * Follows one robot's pages, oldest first, each starting right after the
 * last event of the one before (as {@link Store.readEvents} yields them,
 * also across several reads that go on from the last timestamp), and gives
 * the lifetime odometer at each of their events.
 *
 * The running total of the first event comes from the store
 * ({@link Store.runningTotal}, one index look-up); every later one adds its
 * step as ingest added it when the event was stored (rules.ts, `addStep`),
 * so the figures are those of `GET /api/robots/{robot}` at each event, to
 * the last bit.
 *
 * @example
 * const replay = new OdometerReplay(store, 'Bender')
 * for await (const page of store.readEvents('Bender', { start })) {
 *   const odometers = await replay.next(page)
 *   if (odometers === undefined) break // the robot was deleted meanwhile
 * }
 */
export class OdometerReplay {
  readonly #store: Store
  readonly #robot: string
  #running: RunningTotal | undefined
  #x = 0
  #y = 0

  constructor(store: Store, robot: string) {
    this.#store = store
    this.#robot = robot
  }

  /**
   * The lifetime odometer at each event of `page`, which follows the last
   * page given here; `undefined` when the store no longer holds the first
   * page's first event (the robot was deleted since it was read).
   */
  async next(page: EventPage): Promise<number[] | undefined> {
    const n = page.ts.length
    if (n === 0) return []
    let running = this.#running
    let first = 0
    if (running === undefined) {
      running = await this.#store.runningTotal(this.#robot, page.ts[0]!)
      if (running === undefined) return undefined
      first = 1
    }
    const odometers: number[] = new Array(n)
    let { total, carry } = running
    let x = this.#x
    let y = this.#y
    if (first === 1) {
      odometers[0] = total + carry
      x = page.x[0]!
      y = page.y[0]!
    }
    for (let i = first; i < n; i++) {
      const nx = page.x[i]!
      const ny = page.y[i]!
      ;({ total, carry } = addStep(total, carry, distance(x, y, nx, ny)))
      odometers[i] = total + carry
      x = nx
      y = ny
    }
    this.#running = { total, carry }
    this.#x = x
    this.#y = y
    return odometers
  }
}

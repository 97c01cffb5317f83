/**
 * Retention (`--retain`): passes that remove the events older than a
 * duration, through {@link Store.removeBefore}, for every backend alike.
 *
 * One pass runs at start, then one every `everyMs` from the start of the
 * previous one; never two at once, so a pass that runs longer than the
 * interval delays the next, which then starts as soon as it ends. A pass
 * that fails is logged and counted, and the next one tries again. The
 * cutoff is the server's clock: event timestamps are taken as milliseconds
 * since the Unix epoch (docs/api.md, "Retention").
 */
import type { Logger } from 'pino'
import type { RetentionMetrics } from '../metrics.ts'
import type { Store } from './store.ts'

/** Options of {@link startRetention}. */
export interface RetentionOptions {
  /** The store to prune, already open; it must outlive {@link Retention.close}. */
  readonly store: Pick<Store, 'removeBefore'>
  /** Events with a timestamp older than now minus this many ms are removed. */
  readonly retainMs: number
  /** From the start of one pass to the start of the next, in ms. */
  readonly everyMs: number
  readonly logger: Logger
  readonly metrics: RetentionMetrics
  /** The clock of the cutoff, in ms since the epoch; default `Date.now`. */
  readonly now?: () => number
}

/** Running retention passes. */
export interface Retention {
  /**
   * Stops the passes: none starts from now on, and the promise resolves
   * once a pass in progress has ended. Idempotent.
   */
  close(): Promise<void>
}

/**
 * Starts retention: the first pass at once, the next ones on a timer that
 * never keeps the process alive.
 *
 * @example
 * const retention = startRetention({ store, retainMs: 30 * 86_400_000,
 *   everyMs: 60_000, logger, metrics: metrics.retention })
 * // … later, before store.close():
 * await retention.close()
 */
export function startRetention(options: RetentionOptions): Retention {
  const { store, logger, metrics } = options
  const now = options.now ?? Date.now
  let closed = false
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined

  async function pass(): Promise<void> {
    const started = performance.now()
    const cutoff = now() - options.retainMs
    try {
      const removed = await store.removeBefore(cutoff)
      metrics.passes.inc()
      metrics.removedEvents.inc(removed.events)
      metrics.removedUnits.inc(removed.units)
      metrics.cutoff.set(cutoff / 1000)
      const ms = performance.now() - started
      if (removed.events > 0) {
        logger.info(
          {
            cutoff,
            events: removed.events,
            units: removed.units,
            ms: Math.round(ms),
          },
          'retention removed events',
        )
      }
    } catch (error) {
      metrics.failures.inc()
      logger.error({ err: error, cutoff }, 'retention pass failed')
    } finally {
      metrics.seconds.observe((performance.now() - started) / 1000)
    }
  }

  function run() {
    timer = undefined
    const started = performance.now()
    running = pass().then(() => {
      running = undefined
      if (closed) return
      const wait = Math.max(0, options.everyMs - (performance.now() - started))
      timer = setTimeout(run, wait)
      timer.unref()
    })
  }

  run()
  return {
    async close() {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      await running
    },
  }
}

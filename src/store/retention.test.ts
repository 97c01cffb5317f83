import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { waitFor } from '../../test/support/wait.ts'
import { createMetrics } from '../metrics.ts'
import { startRetention, type RetentionOptions } from './retention.ts'
import type { RetentionPass } from './store.ts'

/** A store whose every pass waits until the test settles it. */
function heldStore() {
  const calls: {
    cutoff: number
    settle: (result: RetentionPass | Error) => void
  }[] = []
  let active = 0
  let mostActive = 0
  return {
    calls,
    get mostActive() {
      return mostActive
    },
    store: {
      removeBefore(cutoff: number): Promise<RetentionPass> {
        active++
        mostActive = Math.max(mostActive, active)
        return new Promise((resolve, reject) => {
          calls.push({
            cutoff,
            settle: (result) => {
              active--
              if (result instanceof Error) reject(result)
              else resolve(result)
            },
          })
        })
      },
    },
  }
}

/** A logger whose JSON lines are kept. */
function keptLogger() {
  const lines: Record<string, unknown>[] = []
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
        done()
      },
    }),
  )
  return { lines, logger }
}

async function value(metric: { get(): Promise<unknown> }): Promise<number> {
  const got = (await metric.get()) as { values: { value: number }[] }
  return got.values[0]?.value ?? 0
}

function options(
  store: RetentionOptions['store'],
  extra: Partial<RetentionOptions> = {},
) {
  const metrics = createMetrics({ bytesInFlight: () => 0 }).retention
  const { lines, logger } = keptLogger()
  return {
    metrics,
    lines,
    options: {
      store,
      retainMs: 3_600_000,
      everyMs: 10,
      logger,
      metrics,
      now: () => 1_700_000_000_000,
      ...extra,
    } satisfies RetentionOptions,
  }
}

describe('startRetention', () => {
  it('should run a pass at once with the cutoff now minus the duration, and count and log what it removed', async () => {
    const held = heldStore()
    const { metrics, lines, options: o } = options(held.store)
    const retention = startRetention(o)
    assert.equal(held.calls.length, 1, 'the first pass starts at once')
    assert.equal(held.calls[0]!.cutoff, 1_700_000_000_000 - 3_600_000)
    held.calls[0]!.settle({ events: 700, units: 3 })
    await waitFor(() => held.calls.length === 2, 'the second pass')
    assert.equal(await value(metrics.passes), 1)
    assert.equal(await value(metrics.removedEvents), 700)
    assert.equal(await value(metrics.removedUnits), 3)
    assert.equal(await value(metrics.cutoff), 1_699_996_400)
    assert.equal(await value(metrics.failures), 0)
    const logged = lines.filter((l) => l.msg === 'retention removed events')
    assert.equal(logged.length, 1)
    assert.deepEqual(
      { level: logged[0]!.level, events: logged[0]!.events },
      { level: 30, events: 700 },
    )
    // A pass that removed nothing is counted, not logged.
    held.calls[1]!.settle({ events: 0, units: 0 })
    await waitFor(() => held.calls.length === 3, 'the third pass')
    assert.equal(await value(metrics.passes), 2)
    assert.equal(
      lines.filter((l) => l.msg === 'retention removed events').length,
      1,
    )
    const closed = retention.close()
    held.calls[2]!.settle({ events: 0, units: 0 })
    await closed
  })

  it('should never run two passes at once: one that runs long delays the next', async () => {
    const held = heldStore()
    const { options: o } = options(held.store, { everyMs: 1 })
    const retention = startRetention(o)
    // Many intervals go by while the first pass is held: none starts.
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(held.calls.length, 1)
    for (let i = 0; i < 5; i++) {
      held.calls[i]!.settle({ events: 1, units: 1 })
      await waitFor(() => held.calls.length === i + 2, `pass ${i + 2}`)
    }
    assert.equal(held.mostActive, 1)
    const closed = retention.close()
    held.calls.at(-1)!.settle({ events: 0, units: 0 })
    await closed
  })

  it('should log and count a failed pass, and try again at the next', async () => {
    const held = heldStore()
    const { metrics, lines, options: o } = options(held.store)
    const retention = startRetention(o)
    held.calls[0]!.settle(new Error('database is locked'))
    await waitFor(() => held.calls.length === 2, 'the pass after the failure')
    assert.equal(await value(metrics.failures), 1)
    assert.equal(await value(metrics.passes), 0)
    const failed = lines.filter((l) => l.msg === 'retention pass failed')
    assert.equal(failed.length, 1)
    assert.equal(failed[0]!.level, 50)
    assert.match(JSON.stringify(failed[0]!.err), /database is locked/)
    held.calls[1]!.settle({ events: 5, units: 1 })
    await waitFor(async () => (await value(metrics.passes)) === 1, 'a pass')
    assert.equal(await value(metrics.removedEvents), 5)
    // The third pass may have started: close waits for it.
    const closed = retention.close()
    for (const call of held.calls.slice(2)) call.settle({ events: 0, units: 0 })
    await closed
  })

  it('should wait on close for the pass in progress, and start none after it', async () => {
    const held = heldStore()
    const { options: o } = options(held.store, { everyMs: 1 })
    const retention = startRetention(o)
    let closed = false
    const closing = retention.close().then(() => {
      closed = true
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(closed, false, 'close waits for the pass in progress')
    held.calls[0]!.settle({ events: 1, units: 1 })
    await closing
    await retention.close()
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(held.calls.length, 1, 'no pass after close')
  })
})

/**
 * Reading a robot's events page by page, the same for every backend.
 */
import type { EventPage, ReadEventsOptions } from './store.ts'

/** Reads at most `max` events of the robot from `from` to `to`, oldest first. */
export type PageReader = (
  from: number,
  to: number,
  max: number,
) => EventPage | Promise<EventPage>

/**
 * Yields the pages of {@link Store.readEvents}: each page is read at once,
 * by one call of `readPage`, so nothing stays open across the awaits of a
 * slow client. A robot's events are only ever added after its latest, so
 * pages that go on from the last timestamp read never miss or repeat one.
 */
export async function* pagesByTimestamp(
  options: ReadEventsOptions,
  readPage: PageReader,
): AsyncIterable<EventPage> {
  const pageSize = options.pageSize ?? 4096
  let remaining = options.limit ?? Infinity
  let from = options.start ?? 0
  const to = options.end ?? Number.MAX_SAFE_INTEGER
  while (remaining > 0 && from <= to) {
    const page = await readPage(from, to, Math.min(pageSize, remaining))
    const n = page.ts.length
    if (n === 0) return
    yield page
    remaining -= n
    from = page.ts[n - 1]! + 1
  }
}

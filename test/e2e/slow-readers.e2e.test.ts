/**
 * Slow readers of a large NDJSON response hold a bounded amount of the
 * server's memory: issue 10 ("memory bounded under every load"). One robot
 * holds 200,000 events, so its whole NDJSON track is about 13 MB; 100
 * clients ask for it at once and read it a few bytes at a time, and the
 * server's resident memory must stay far below what 100 whole responses
 * would take. Then every response is read to its end and checked.
 *
 * The server streams a response page by page (docs/reliability.md, "Limits
 * and overload"): what one slow reader holds is a few pages, whatever the
 * length of the track. Nothing here depends on the machine's speed: the
 * slow phase lasts until the server has nothing left to do (its CPU time
 * stands still), and the bound is on memory, never on time.
 */
import assert from 'node:assert/strict'
import { get, type IncomingMessage } from 'node:http'
import { test } from 'node:test'
import {
  IngestClient,
  cpuSeconds,
  memory,
  resetPeakRss,
  robotPath,
  startServer,
  waitFor,
  withTimeout,
  type Outgoing,
} from '../support/index.ts'

const ROBOT = 'slow-reader'
/**
 * Events of the robot: its whole NDJSON track is about 13 MB, and 100 of
 * them 1.3 GB (500,000 events made the test take 85 s, most of it the
 * server rendering 100 whole tracks).
 */
const EVENTS = 200_000
/** Lines per ingest frame: the server's default limit. */
const LINES_PER_FRAME = 10_000
/** Slow readers at once. */
const READERS = 100
/** Bytes each slow reader takes per round. */
const SIP = 64
const T0 = 1_700_000_000_000
/**
 * What one response may hold of the server's memory, as docs/reliability.md
 * states it: 4 column pages read ahead by the store thread, one rendered
 * page in the response stream and one in the socket's buffer (4,096 events
 * of about 66 bytes: 270 KB a page), about 1.5 MB of live data; 100 slow
 * readers grew the RSS by about 3 MB each (the garbage the collector has
 * not yet taken back), and the bound leaves 5 MiB, against the 13 MB of a
 * whole response.
 */
const PER_RESPONSE_BOUND = 5 * 1024 * 1024
const MB = 1024 * 1024

/** Event `i` of the robot: `x,y,timestamp`, integers so the NDJSON is known. */
function event(i: number): { x: number; y: number; timestamp: number } {
  return { x: i % 1000, y: ((i * 7) % 1000) - 500, timestamp: T0 + i }
}

/** The NDJSON line the server writes for event `i`, without its `\n`. */
function ndjsonLine(i: number): string {
  const { x, y, timestamp } = event(i)
  return `{"robot":"${ROBOT}","x":${x},"y":${y},"timestamp":${timestamp}}`
}

/** One slow reader: a response read a few bytes at a time, then to its end. */
interface Reader {
  readonly response: IncomingMessage
  /** Bytes read so far. */
  bytes: number
  lines: number
  /** The first line, once it is whole, and the last bytes seen. */
  head: string
  tail: string
}

/** Takes a chunk of a response: counts its bytes and lines, keeps head and tail. */
function take(reader: Reader, chunk: Buffer) {
  reader.bytes += chunk.length
  for (let at = chunk.indexOf(10); at >= 0; at = chunk.indexOf(10, at + 1)) {
    reader.lines++
  }
  if (!reader.head.includes('\n')) {
    reader.head += chunk.subarray(0, 200).toString('latin1')
  }
  reader.tail = (reader.tail + chunk.subarray(-200).toString('latin1')).slice(
    -200,
  )
}

/** Opens the NDJSON response on a connection of its own. */
function open(url: string): Promise<Reader> {
  return new Promise((resolve, reject) => {
    const request = get(
      `${url}${robotPath(ROBOT, '/events')}`,
      { agent: false, headers: { accept: 'application/x-ndjson' } },
      (response) => {
        const reader: Reader = {
          response,
          bytes: 0,
          lines: 0,
          head: '',
          tail: '',
        }
        // Paused: the body is only read by read(SIP) below, so the socket
        // stops being read once the response's small buffer is full.
        response.pause()
        resolve(reader)
      },
    )
    request.on('error', reject)
  })
}

test('100 slow readers of a 13 MB NDJSON response hold a bounded share of the server memory, and each then reads it whole', async (t) => {
  const server = await startServer()
  t.after(() => server.dispose())

  // --- the robot's track, 50 frames of 10,000 events ---
  const client = await IngestClient.connect(server.wsUrl)
  let next = 0
  let expectedBytes = 0
  await client.stream((): Outgoing<undefined> | undefined => {
    if (next >= EVENTS) return undefined
    const lines: string[] = []
    for (
      let end = Math.min(EVENTS, next + LINES_PER_FRAME);
      next < end;
      next++
    ) {
      const { x, y, timestamp } = event(next)
      lines.push(`${x},${y},${timestamp},${ROBOT}`)
      expectedBytes += ndjsonLine(next).length + 1
    }
    return { data: lines.join('\n'), tag: undefined }
  }, 4)
  for (const frame of client.frames) {
    assert.ok(
      frame.reply !== undefined && /^(OK\n)*OK$/.test(frame.reply),
      'every event is stored',
    )
  }
  await client.close()
  assert.ok(
    expectedBytes > 2 * PER_RESPONSE_BOUND,
    `a whole response (${(expectedBytes / MB).toFixed(1)} MB) is much larger than the bound`,
  )

  // --- 100 responses at once, read a few bytes at a time ---
  const before = memory(server.pid).rss
  const hwmReset = resetPeakRss(server.pid)
  let peak = before
  const sample = () => {
    const { rss, hwm } = memory(server.pid)
    peak = Math.max(peak, rss, hwmReset ? hwm : 0)
  }
  const sampler = setInterval(sample, 20)
  t.after(() => clearInterval(sampler))
  const readers = await withTimeout(
    Promise.all(Array.from({ length: READERS }, () => open(server.url))),
    'the 100 responses start',
  )
  for (const reader of readers) {
    assert.equal(reader.response.statusCode, 200)
    assert.match(
      reader.response.headers['content-type'] ?? '',
      /^application\/x-ndjson/,
    )
    t.after(() => reader.response.destroy())
  }
  // Each round every reader takes a few bytes; the round ends when the
  // server has had nothing to do for a while (every response waits for its
  // reader): its CPU time stands still over three checks in a row.
  let still = 0
  let cpu = cpuSeconds(server.pid)
  await waitFor(
    () => {
      for (const reader of readers) {
        const chunk = reader.response.read(SIP) as Buffer | null
        if (chunk !== null) take(reader, chunk)
      }
      sample()
      const now = cpuSeconds(server.pid)
      still = now - cpu < 0.02 ? still + 1 : 0
      cpu = now
      return still >= 3
    },
    'the server waits for its slow readers',
    { intervalMs: 250 },
  )
  clearInterval(sampler)
  sample()
  const growth = peak - before
  const bound = READERS * PER_RESPONSE_BOUND
  t.diagnostic(
    `server RSS ${(before / MB).toFixed(0)} MB before, peak growth ${(growth / MB).toFixed(0)} MB with ${READERS} slow readers (bound ${(bound / MB).toFixed(0)} MB; the whole responses: ${((READERS * expectedBytes) / MB).toFixed(0)} MB)`,
  )
  assert.ok(
    growth < bound,
    `the server's RSS grew by ${(growth / MB).toFixed(0)} MB, over ${(bound / MB).toFixed(0)} MB`,
  )
  const slowBytes = readers.reduce((sum, r) => sum + r.bytes, 0)
  assert.ok(
    slowBytes < READERS * expectedBytes,
    'the slow readers have not read everything',
  )

  // --- every response read to its end ---
  await withTimeout(
    Promise.all(
      readers.map(
        (reader) =>
          new Promise<void>((resolve, reject) => {
            reader.response.on('data', (chunk: Buffer) => take(reader, chunk))
            reader.response.once('end', resolve)
            reader.response.once('error', reject)
            reader.response.resume()
          }),
      ),
    ),
    'every response read to its end',
    120_000,
  )
  const first = `${ndjsonLine(0)}\n`
  const last = `${ndjsonLine(EVENTS - 1)}\n`
  for (const [i, reader] of readers.entries()) {
    assert.equal(reader.lines, EVENTS, `lines of response ${i}`)
    assert.equal(reader.bytes, expectedBytes, `bytes of response ${i}`)
    assert.equal(
      reader.head.slice(0, first.length),
      first,
      `first line of ${i}`,
    )
    assert.equal(reader.tail.slice(-last.length), last, `last line of ${i}`)
  }
})

/**
 * Issue 10, memory bounded under every load: a fleet of many robots, each
 * with one event, sent 5,000 lines a frame to a real server on SQLite.
 * Every event is answered `OK` and stored; the server's memory per robot
 * stays under a bound; after a clean restart the server holds no robot
 * until one is named, and the robot list still pages and counts them all.
 *
 * Memory is the server's RSS (VmRSS of /proc/PID/status), a size, not a
 * time: the assertions hold on any machine, however fast.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  IngestClient,
  getJson,
  memory,
  request,
  scrapeMetrics,
  startServer,
  type ServerProcess,
} from '../support/index.ts'

const ROBOTS = 200_000
const WARM_UP = 50_000
const LINES_PER_FRAME = 5000
/**
 * The bound on RSS growth per robot while the fleet is within the log's
 * window (262,144 events), so every robot is held. The store's own
 * structures are about 210 bytes a robot beside its name (a state row of
 * 112, its event in the log's mirror 56, its map entry); measured on the
 * whole process 780-950 bytes, as the SQLite page cache and the worker's
 * heap grow along. An object and six arrays per robot, as before issue 10,
 * cost about 2,300.
 */
const MAX_BYTES_PER_ROBOT = 1200

const name = (i: number) => `robot-${String(i).padStart(6, '0')}`

function rssBytes(server: ServerProcess): number {
  return memory(server.pid).rss
}

async function robotsInMemory(server: ServerProcess): Promise<number> {
  return (await scrapeMetrics(server)).value('telemetry_store_robots_in_memory')
}

test('holds many one-event robots in bounded memory, stores every event, and loads none at a clean restart', async (t) => {
  const first = await startServer()
  t.after(() => first.dispose())
  const client = await IngestClient.connect(first.wsUrl)
  let next = 0
  let ok = 0
  const other: string[] = []
  client.onReply = (frame) => {
    for (const line of frame.reply!.split('\n')) {
      if (line === 'OK') ok++
      else other.push(line)
    }
  }
  const sendUpTo = (end: number) =>
    client.stream(() => {
      if (next >= end) return undefined
      const lines: string[] = []
      for (let i = 0; i < LINES_PER_FRAME && next < end; i++, next++) {
        lines.push(`${next % 1000},${next % 7},1700000000000,${name(next)}`)
      }
      return { data: lines.join('\n'), tag: undefined }
    }, 4)
  // What the process grows by once (the SQLite page cache, the heaps'
  // young generations, the allocators' arenas) grows during a first part
  // of the fleet; the rest shows what a robot costs.
  await sendUpTo(WARM_UP)
  const before = rssBytes(first)
  await sendUpTo(ROBOTS)
  await client.close()
  assert.deepEqual({ ok, other: other.slice(0, 5) }, { ok: ROBOTS, other: [] })

  const perRobot = (rssBytes(first) - before) / (ROBOTS - WARM_UP)
  assert.ok(
    perRobot < MAX_BYTES_PER_ROBOT,
    `RSS grew by ${Math.round(perRobot)} bytes a robot, over ${MAX_BYTES_PER_ROBOT}`,
  )
  const stopped = await first.stop(120_000)
  assert.equal(stopped.killed, false, 'a clean stop')

  const second = await startServer(
    [],
    {},
    { storePath: first.store.slice('sqlite:'.length) },
  )
  t.after(() => second.dispose())
  // A clean stop packed every tail: the start read no robot.
  assert.equal(await robotsInMemory(second), 0)

  // Every robot, page by page, as it was sent.
  let after: string | undefined
  let seen = 0
  for (;;) {
    const query = `limit=10000${after === undefined ? '' : `&after=${after}`}`
    const page = await request(second, `/api/robots?${query}`)
    assert.equal(page.status, 200)
    assert.equal(page.headers.get('x-total-count'), String(ROBOTS))
    const robots = JSON.parse(page.text) as Record<string, unknown>[]
    for (const robot of robots) {
      assert.deepEqual(
        [robot.name, robot.event_count, robot.last_x, robot.last_y],
        [name(seen), 1, seen % 1000, seen % 7],
      )
      seen++
    }
    const link = page.headers.get('link')
    if (link === null) break
    assert.equal(
      link,
      `</api/robots?limit=10000&after=${name(seen - 1)}>; rel="next"`,
    )
    after = name(seen - 1)
  }
  assert.equal(seen, ROBOTS)
  // Reads load a robot for the time of the read only.
  assert.equal(await robotsInMemory(second), 0)

  // A robot is loaded when a batch names it, and judged by its stored state.
  const again = await IngestClient.connect(second.wsUrl)
  t.after(() => again.close())
  const robot = name(4242)
  assert.deepEqual(
    await again.lines(
      `242,0,1700000000000,${robot}\n0,0,1700000000001,${robot}`,
    ),
    ['DUP', 'OK'],
  )
  assert.equal(await robotsInMemory(second), 1)
  const body = (await getJson(second, `/api/robots/${robot}`)).body as Record<
    string,
    unknown
  >
  assert.deepEqual(
    [body.event_count, body.odometer, body.last_timestamp],
    [2, 242, 1700000000001],
  )
})

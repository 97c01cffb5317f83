/**
 * Issue 10's figures: a fleet of many robots, each with one event, sent to
 * a started server (SQLite) 5,000 lines a frame; then a clean restart on
 * that store.
 *
 *   npm run build && node dist/bench/many-robots.js [ROBOTS] [STORE_PATH]
 *
 * Prints one JSON line: the server's RSS before and after the load (VmRSS
 * of /proc/PID/status) and its peak (VmHWM), bytes per robot, the load's
 * events per second, and the restart's seconds from spawn to the first
 * `/healthz` 200 with `telemetry_store_robots_in_memory` then. ROBOTS
 * defaults to 1,000,000; the store is a fresh file unless STORE_PATH names
 * one (it is then kept).
 */
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import {
  IngestClient,
  scrapeMetrics,
  startServer,
  type ServerProcess,
} from '../test/support/index.ts'

const LINES_PER_FRAME = 5000

/** A field of /proc/PID/status in bytes, e.g. `VmRSS`. */
function procStatus(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`)
  return Number(match[1]) * 1024
}

async function load(server: ServerProcess, robots: number) {
  const client = await IngestClient.connect(server.wsUrl)
  let next = 0
  let ok = 0
  client.onReply = (frame) => {
    for (const line of frame.reply!.split('\n')) if (line === 'OK') ok++
  }
  const started = performance.now()
  await client.stream(() => {
    if (next >= robots) return undefined
    const lines: string[] = []
    for (let i = 0; i < LINES_PER_FRAME && next < robots; i++, next++) {
      lines.push(`${next % 1000},${next % 7},1700000000000,robot-${next}`)
    }
    return { data: lines.join('\n'), tag: undefined }
  }, 4)
  const seconds = (performance.now() - started) / 1000
  await client.close()
  return { ok, seconds }
}

async function main() {
  const robots = Number(process.argv[2] ?? 1_000_000)
  const keep = process.argv[3]
  const first = await startServer([], {}, { storePath: keep })
  const path = first.store.slice('sqlite:'.length)
  const rssBefore = procStatus(first.pid, 'VmRSS')
  const { ok, seconds } = await load(first, robots)
  const rssAfter = procStatus(first.pid, 'VmRSS')
  const peak = procStatus(first.pid, 'VmHWM')
  const total = (await fetch(`${first.url}/api/robots?limit=1`)).headers.get(
    'x-total-count',
  )
  const stopped = await first.stop(600_000)

  const spawned = performance.now()
  const second = await startServer([], {}, { storePath: path })
  for (;;) {
    const response = await fetch(`${second.url}/healthz`).catch(() => null)
    if (response?.status === 200) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const restartSeconds = (performance.now() - spawned) / 1000
  const inMemory = (await scrapeMetrics(second)).value(
    'telemetry_store_robots_in_memory',
  )
  const rssRestarted = procStatus(second.pid, 'VmRSS')
  await second.stop(600_000)
  if (keep === undefined) {
    await first.dispose()
    await second.dispose()
  }
  console.log(
    JSON.stringify({
      robots,
      ok,
      totalCount: Number(total),
      loadSeconds: Number(seconds.toFixed(1)),
      eventsPerSecond: Math.round(robots / seconds),
      rssBeforeMiB: Math.round(rssBefore / 2 ** 20),
      rssAfterMiB: Math.round(rssAfter / 2 ** 20),
      peakRssMiB: Math.round(peak / 2 ** 20),
      bytesPerRobot: Math.round((rssAfter - rssBefore) / robots),
      closeSeconds: Number(stopped.seconds.toFixed(1)),
      restartSeconds: Number(restartSeconds.toFixed(2)),
      robotsInMemoryAfterRestart: inMemory,
      rssRestartedMiB: Math.round(rssRestarted / 2 ** 20),
    }),
  )
}

await main()

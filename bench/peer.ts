/**
 * The `peer` scenario (issue 17): the server and InfluxDB side by side,
 * on the same machine, the same events, in the same run.
 *
 * Each round measures both, in turns (server first in odd rounds, InfluxDB
 * first in even ones, so that a steady drift of the machine cancels):
 *
 * - the server, once per frame size (1, 10 and 100 lines a frame), each
 *   time a fresh process on a fresh SQLite store: its memory at rest, then
 *   the same `perRobot` events of each robot through the load generator
 *   (load.ts, count-bound per robot), its CPU and peak memory over that
 *   ingest; after the 10-line ingest the reads (query.ts `intervals`);
 *   then a clean stop, and the store's bytes on disk;
 * - InfluxDB (test/support/influxdb.ts): `influxd` with its defaults, its
 *   memory at rest, the same events through influx-load.ts (batches of
 *   `batch` lines from `writers` writers), the same reads in InfluxQL, a
 *   clean stop and the database's bytes on disk; then once more started on
 *   its folder with compaction after a second without writes, and its
 *   bytes once the files stop changing (the compacted figure).
 *
 * Figures are per round; figures.ts takes their medians.
 */
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import {
  influxdbSkip,
  INFLUXD_PATH,
  makeTempDir,
  removeTempDir,
  runJsonProcess,
  startInfluxd,
  treeBytes,
  waitFor,
  type Influxd,
  type ListeningProcess,
} from '../test/support/index.ts'
import {
  PEER_FRAME_SIZES,
  PEER_READ_FRAME_SIZE,
  type PeerFrameSize,
} from './figures.ts'
import { LIVE_STEP, LIVE_T0 } from './fleet.ts'
import type { InfluxLoadOptions, InfluxLoadResult } from './influx-load.ts'
import type { LoadOptions, LoadResult } from './load.ts'
import { memory, ProcessMeter } from './proc.ts'
import type { IntervalsOptions, IntervalsResult } from './query.ts'

/** Events per robot, in every run of both: the reads need 1,000 of them. */
export const PEER_EVENTS_PER_ROBOT = 2000
/** Consecutive events of each read. */
export const PEER_SPAN = 1000
/** Time at rest before the memory at rest is read. */
const REST_MS = 2000
/** Seconds without a change of InfluxDB's files before they are compacted. */
const COMPACTED_STILL_MS = 3000

/** What the scenario is asked to do. */
export interface PeerSettings {
  readonly rounds: number
  readonly robots: number
  readonly connections: number
  readonly window: number
  /** InfluxDB's writers and lines per write request. */
  readonly writers: number
  readonly batch: number
  /** Reads of each kind measured, after as many warm-up reads. */
  readonly reads: number
  readonly warmupReads: number
}

/** What both sides measure of one ingest. */
export interface PeerIngest {
  /** Events answered: `OK` (the server), in a 204 request (InfluxDB). */
  readonly events: number
  /** From the first send to the last answer. */
  readonly seconds: number
  readonly eventsPerSecond: number
  /** The process's CPU over the ingest, every thread. */
  readonly cpuSeconds: number
  /** RSS at rest, empty, and the peak during the ingest. */
  readonly idleRss: number
  readonly peakRss: number
  /** On disk after a clean stop. */
  readonly diskBytes: number
  /** What the store holds after the ingest, counted through its API. */
  readonly stored: number | undefined
  readonly reads?: IntervalsResult
}

/** The server's figures at one frame size in one round. */
export interface PeerServerRun extends PeerIngest {
  readonly linesPerFrame: PeerFrameSize
  readonly nonOk: number
}

/** InfluxDB's figures in one round. */
export interface PeerInfluxRun extends PeerIngest {
  readonly compactedBytes: number
  readonly failed: number
  readonly requests: number
  readonly reads: IntervalsResult
}

export interface PeerRound {
  readonly first: 'server' | 'influxdb'
  readonly server: PeerServerRun[]
  readonly influxdb: PeerInfluxRun
}

/** The scenario's report (`RunReport.peer`). */
export interface PeerReport {
  readonly peer: 'influxdb'
  /** `influxd version`. */
  readonly version: string
  readonly settings: PeerSettings
  readonly events: number
  readonly rounds: PeerRound[]
}

/** What the scenario needs of the bench that runs it (run.ts). */
export interface PeerHost {
  readonly loadScript: string
  readonly queryScript: string
  readonly influxLoadScript: string
  /** Runs the real server on the SQLite store at `url` (run.ts `withServer`). */
  withServer<T>(
    name: { readonly url: string },
    what: string,
    body: (server: ListeningProcess) => Promise<T>,
  ): Promise<{ value: T; stored: number | undefined }>
  problem(text: string): void
  say(text: string): void
}

/** Why the peer cannot run here, or false. */
export function peerSkip(): string | false {
  return influxdbSkip()
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Runs the rounds and returns the report. */
export async function runPeer(
  host: PeerHost,
  settings: PeerSettings,
): Promise<PeerReport> {
  const version = execFileSync(INFLUXD_PATH, ['version'], {
    encoding: 'utf8',
  }).trim()
  const events = settings.robots * PEER_EVENTS_PER_ROBOT
  const rounds: PeerRound[] = []
  for (let r = 0; r < settings.rounds; r++) {
    const first = r % 2 === 0 ? 'server' : 'influxdb'
    host.say(`  peer round ${r + 1} of ${settings.rounds}, ${first} first`)
    let server: PeerServerRun[] = []
    if (first === 'server') server = await serverRuns(host, settings)
    const influxdb = await influxRun(host, settings)
    if (first === 'influxdb') server = await serverRuns(host, settings)
    rounds.push({ first, server, influxdb })
  }
  return { peer: 'influxdb', version, settings, events, rounds }
}

/**
 * Lets process `pid` rest, reads its memory at rest, then runs the load
 * generator `script` with `options` (a JSON process), the process's CPU
 * and peak memory metered.
 */
async function meteredIngest<T>(
  pid: number,
  script: string,
  options: unknown,
): Promise<{
  idleRss: number
  result: T
  metered: ReturnType<ProcessMeter['stop']>
}> {
  await pause(REST_MS)
  const idleRss = memory(pid).rss
  const meter = new ProcessMeter(pid, { resetPeak: true })
  let result: T
  try {
    result = await runJsonProcess<T>(script, options, {
      timeoutMs: 720_000,
      echoStderr: true,
    })
  } catch (error) {
    meter.stop()
    throw error
  }
  return { idleRss, result, metered: meter.stop() }
}

/** The reads' settings, for either target. */
function readOptions(
  settings: PeerSettings,
  target: IntervalsOptions['target'],
  baseUrl: string,
  database = '',
): IntervalsOptions {
  return {
    mode: 'intervals',
    target,
    baseUrl,
    database,
    robots: settings.robots,
    perRobot: PEER_EVENTS_PER_ROBOT,
    span: PEER_SPAN,
    t0: LIVE_T0,
    step: LIVE_STEP,
    warmupRequests: settings.warmupReads,
    requests: settings.reads,
    maxMs: 120_000,
    seed: 17,
  }
}

async function reads(
  host: PeerHost,
  options: IntervalsOptions,
  what: string,
): Promise<IntervalsResult> {
  const result = await runJsonProcess<IntervalsResult>(
    host.queryScript,
    options,
    { timeoutMs: 300_000, echoStderr: true },
  )
  if (result.wrong > 0) {
    host.problem(
      `${what}: ${result.wrong} wrong answers, first: ${result.wrongSamples.join('; ')}`,
    )
  }
  host.say(
    `  ${what} reads: odometer p50 ${result.odometer.p50.toFixed(2)} ms, window p50 ${result.window.p50.toFixed(2)} / p99 ${result.window.p99.toFixed(2)} ms`,
  )
  return result
}

async function serverRuns(
  host: PeerHost,
  settings: PeerSettings,
): Promise<PeerServerRun[]> {
  const runs: PeerServerRun[] = []
  for (const linesPerFrame of PEER_FRAME_SIZES) {
    const dir = makeTempDir('telemetry-bench-peer-')
    try {
      const what = `peer: server, ${linesPerFrame} line(s)/frame`
      const { value, stored } = await host.withServer(
        { url: `sqlite:${join(dir, 'telemetry.db')}` },
        what,
        async (server) => {
          const options: LoadOptions = {
            url: server.upstreamUrl,
            connections: settings.connections,
            robots: settings.robots,
            linesPerFrame,
            window: settings.window,
            warmupMs: 0,
            durationMs: 600_000,
            maxEvents: settings.robots * PEER_EVENTS_PER_ROBOT,
            perRobot: PEER_EVENTS_PER_ROBOT,
            rate: 0,
            t0: LIVE_T0,
            step: LIVE_STEP,
            drainTimeoutMs: 60_000,
          }
          const {
            idleRss,
            result: load,
            metered,
          } = await meteredIngest<LoadResult>(
            server.pid,
            host.loadScript,
            options,
          )
          if (load.nonOk > 0 || load.unanswered > 0) {
            host.problem(
              `${what}: ${load.nonOk} replies not OK (${load.nonOkSamples.join('; ')}), ${load.unanswered} frames unanswered`,
            )
          }
          const run = {
            linesPerFrame,
            events: load.ok,
            seconds: load.lastReplySeconds,
            eventsPerSecond: load.ok / load.lastReplySeconds,
            cpuSeconds: metered.cpuSeconds,
            idleRss,
            peakRss: metered.peakRss,
            nonOk: load.nonOk,
          }
          host.say(
            `  ${what}: ${Math.round(run.eventsPerSecond).toLocaleString('en-US')} events/s, ${((1e6 * run.cpuSeconds) / run.events).toFixed(2)} CPU s per million`,
          )
          if (linesPerFrame !== PEER_READ_FRAME_SIZE) return run
          return {
            ...run,
            reads: await reads(
              host,
              readOptions(settings, 'server', server.url),
              what,
            ),
          }
        },
      )
      if (stored !== value.events) {
        host.problem(
          `${what}: the store holds ${stored} events, ${value.events} were answered OK`,
        )
      }
      runs.push({ ...value, stored, diskBytes: treeBytes(dir) })
    } finally {
      removeTempDir(dir)
    }
  }
  return runs
}

async function influxRun(
  host: PeerHost,
  settings: PeerSettings,
): Promise<PeerInfluxRun> {
  const what = 'peer: InfluxDB'
  let influxd: Influxd | undefined = await startInfluxd()
  const dir = influxd.dir
  try {
    const options: InfluxLoadOptions = {
      url: influxd.url,
      database: influxd.database,
      writers: settings.writers,
      batch: settings.batch,
      robots: settings.robots,
      events: settings.robots * PEER_EVENTS_PER_ROBOT,
      t0: LIVE_T0,
      step: LIVE_STEP,
      maxMs: 600_000,
    }
    const {
      idleRss,
      result: load,
      metered,
    } = await meteredIngest<InfluxLoadResult>(
      influxd.pid,
      host.influxLoadScript,
      options,
    )
    if (load.failed > 0) {
      host.problem(
        `${what}: ${load.failed} write requests failed: ${load.failures.join('; ')}`,
      )
    }
    host.say(
      `  ${what}: ${Math.round(load.eventsPerSecond).toLocaleString('en-US')} events/s, ${((1e6 * metered.cpuSeconds) / load.written).toFixed(2)} CPU s per million`,
    )
    const stored = await influxCount(influxd).catch((error: unknown) => {
      host.problem(`${what}: cannot count the points: ${String(error)}`)
      return undefined
    })
    if (stored !== load.written) {
      host.problem(
        `${what}: the database holds ${stored} points, ${load.written} were written`,
      )
    }
    const read = await reads(
      host,
      readOptions(settings, 'influxdb', influxd.url, influxd.database),
      what,
    )
    const exit = await influxd.stop()
    if (exit.killed || exit.code !== 0) {
      host.problem(
        `${what}: influxd did not stop cleanly (${exit.code ?? exit.signal})`,
      )
    }
    const diskBytes = influxd.databaseBytes()
    // Started again on its files, compacting after a second without
    // writes; the compacted size is the one its files settle at.
    influxd = await startInfluxd({ dir, coldAfter: '1s' })
    const compacted = influxd
    let last = -1
    let still = performance.now()
    await waitFor(
      () => {
        const bytes = compacted.databaseBytes()
        if (bytes !== last) {
          last = bytes
          still = performance.now()
        }
        return performance.now() - still >= COMPACTED_STILL_MS
      },
      `${what}: its files stop changing`,
      { timeoutMs: 120_000, intervalMs: 200 },
    )
    await influxd.stop()
    const compactedBytes = influxd.databaseBytes()
    return {
      events: load.written,
      seconds: load.seconds,
      eventsPerSecond: load.eventsPerSecond,
      cpuSeconds: metered.cpuSeconds,
      idleRss,
      peakRss: metered.peakRss,
      diskBytes,
      compactedBytes,
      stored,
      failed: load.failed,
      requests: load.requests,
      reads: read,
    }
  } finally {
    await influxd?.remove()
  }
}

/** The points InfluxDB holds, by `SELECT COUNT(x)`. */
async function influxCount(influxd: Influxd): Promise<number> {
  const q = encodeURIComponent('SELECT COUNT(x) FROM pose')
  const res = await fetch(`${influxd.url}/query?db=${influxd.database}&q=${q}`)
  const body = (await res.json()) as {
    results?: { series?: { values?: [unknown, number][] }[] }[]
  }
  return body.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? 0
}

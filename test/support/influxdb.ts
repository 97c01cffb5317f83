/**
 * InfluxDB 1.x from Debian's `influxdb` package, started for real as the
 * bench's peer (bench/peer.ts): `influxd` on free ports of 127.0.0.1, with
 * a configuration of its own and its meta, data and write-ahead-log
 * folders in a temporary folder, reporting off. Everything else is
 * InfluxDB's default (the write-ahead log fsynced on every write request,
 * the in-memory index, the HTTP log), unless asked otherwise.
 */
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from './ports.ts'
import { startProcess, type StartedProcess } from './processes.ts'
import { makeTempDir, removeTempDir } from './temp-dirs.ts'
import { waitFor } from './wait.ts'

/** Where Debian's package puts the server. */
export const INFLUXD_PATH = '/usr/bin/influxd'
/** How to get it on Debian or Ubuntu. */
export const INFLUXD_INSTALL = 'sudo apt-get install -y influxdb'

/** Why InfluxDB cannot be started here, or false when it can. */
export function influxdbSkip(): string | false {
  if (!existsSync(INFLUXD_PATH)) {
    return `no ${INFLUXD_PATH}: install Debian's InfluxDB 1.x with \`${INFLUXD_INSTALL}\``
  }
  return false
}

/** Options of {@link startInfluxd}. */
export interface InfluxdOptions {
  /**
   * The database the peer writes to, created once the server answers
   * (default `bench`).
   */
  readonly database?: string
  /**
   * Snapshot the cache and fully compact a shard after this long without
   * writes (InfluxDB's defaults: 10 minutes and 4 hours), to measure the
   * compacted size without waiting for them.
   */
  readonly coldAfter?: string
  /** An existing folder to run on (one from an earlier start). */
  readonly dir?: string
}

/** A running `influxd`. */
export interface Influxd {
  readonly process: StartedProcess
  readonly pid: number
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  readonly database: string
  /** The folder of its configuration, meta, data and write-ahead log. */
  readonly dir: string
  /** Bytes on disk of the database: its TSM files, index and WAL. */
  databaseBytes(): number
  /** SIGTERM, then SIGKILL after `timeoutMs`; the folder stays. */
  stop(timeoutMs?: number): ReturnType<StartedProcess['stop']>
  /** Stops it and removes its folder. */
  remove(): Promise<void>
}

/** Bytes of every file under `path` (0 when it does not exist). */
export function treeBytes(path: string): number {
  const stat = statSync(path, { throwIfNoEntry: false })
  if (stat === undefined) return 0
  if (!stat.isDirectory()) return stat.size
  let bytes = 0
  for (const entry of readdirSync(path)) bytes += treeBytes(join(path, entry))
  return bytes
}

/**
 * Starts `influxd` and resolves once `/ping` answers and the database
 * exists. Throws, with its log, when it does not come up in 30 s.
 */
export async function startInfluxd(
  options: InfluxdOptions = {},
): Promise<Influxd> {
  const database = options.database ?? 'bench'
  const dir = options.dir ?? makeTempDir('telemetry-influxdb-')
  const [httpPort, rpcPort] = [await freePort(), await freePort()]
  const cold =
    options.coldAfter === undefined
      ? ''
      : `  cache-snapshot-write-cold-duration = "${options.coldAfter}"\n  compact-full-write-cold-duration = "${options.coldAfter}"\n`
  const config = join(dir, 'influxdb.conf')
  writeFileSync(
    config,
    // The Debian build reads `reporting-enabled`; upstream's name is
    // `reporting-disabled`: both, so that nothing is sent anywhere.
    `reporting-enabled = false
reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${join(dir, 'meta')}"

[data]
  dir = "${join(dir, 'data')}"
  wal-dir = "${join(dir, 'wal')}"
${cold}
[http]
  bind-address = "127.0.0.1:${httpPort}"
`,
  )
  const child = startProcess(INFLUXD_PATH, ['-config', config], {
    outputLimit: 20_000,
  })
  const url = `http://127.0.0.1:${httpPort}`
  const influxd: Influxd = {
    process: child,
    pid: child.pid,
    url,
    database,
    dir,
    databaseBytes: () =>
      treeBytes(join(dir, 'data', database)) +
      treeBytes(join(dir, 'wal', database)),
    stop: (timeoutMs = 60_000) => child.stop(timeoutMs),
    async remove() {
      await child.stop(60_000)
      removeTempDir(dir)
    },
  }
  try {
    await waitFor(
      async () => {
        if (!child.running) {
          throw new Error(`influxd ended: ${child.stderr().slice(-2000)}`)
        }
        const res = await fetch(`${url}/ping`).catch(() => undefined)
        return res?.status === 204
      },
      'influxd answers /ping',
      { timeoutMs: 30_000, intervalMs: 100 },
    )
    const res = await fetch(
      `${url}/query?q=${encodeURIComponent(`CREATE DATABASE ${database}`)}`,
      { method: 'POST' },
    )
    if (res.status !== 200) {
      throw new Error(`CREATE DATABASE: ${res.status} ${await res.text()}`)
    }
  } catch (error) {
    await influxd.remove()
    throw error
  }
  return influxd
}

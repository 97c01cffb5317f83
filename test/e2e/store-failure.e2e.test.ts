/**
 * A store that fails for real: the server's SQLite file on a small tmpfs
 * that fills up. Commits fail with SQLITE_FULL; the events of a failed
 * batch are answered `ERR unavailable`, never `OK`; reads go on; once space
 * is freed, ingest recovers without a restart.
 *
 * Mounting a tmpfs needs root (CI runs as root). Elsewhere the test skips
 * with a message; under CI=true it must run.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  closeSync,
  mkdtempSync,
  openSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import {
  IngestClient,
  getJson,
  readEvents,
  request,
  startServer,
} from '../support/index.ts'

/** Mounts a tmpfs of `mib` MiB, or says why it cannot. */
function mountTmpfs(mib: number): { dir: string } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), 'telemetry-tmpfs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir], {
      stdio: 'pipe',
    })
    return { dir }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    return { skip: `cannot mount a tmpfs here (needs root): ${String(error)}` }
  }
}

function unmount(dir: string) {
  execFileSync('umount', [dir], { stdio: 'pipe' })
  rmSync(dir, { recursive: true, force: true })
}

/** Writes a file until the filesystem is full; returns its path. */
function fill(dir: string): string {
  const path = join(dir, 'filler')
  const fd = openSync(path, 'w')
  const chunk = Buffer.alloc(64 * 1024, 7)
  try {
    for (;;) writeSync(fd, chunk)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error
  } finally {
    closeSync(fd)
  }
  return path
}

const ROBOTS = 50
/** One frame: an event for each robot at timestamp `t`. */
function frame(t: number): string {
  return Array.from(
    { length: ROBOTS },
    (_, r) => `${t},${r},${t},full-${r}`,
  ).join('\n')
}

describe('store failure', () => {
  const mounted = mountTmpfs(16)
  const skip =
    'skip' in mounted && process.env.CI !== 'true' ? mounted.skip : false

  test(
    'answers ERR unavailable when the disk is full, keeps serving reads, and recovers once space is freed',
    { skip },
    async (t) => {
      assert.ok('dir' in mounted, 'skip' in mounted ? mounted.skip : '')
      const dir = mounted.dir
      const server = await startServer(
        [],
        {},
        {
          storePath: join(dir, 'telemetry.db'),
        },
      )
      t.after(async () => {
        await server.dispose()
        unmount(dir)
      })
      const client = await IngestClient.connect(server.wsUrl)
      const ok = Array(ROBOTS).fill('OK').join('\n')
      const unavailable = /^ERR unavailable /
      let t0 = 1
      for (; t0 <= 20; t0++) assert.equal(await client.send(frame(t0)), ok)

      const filler = fill(dir)
      // Frames one at a time, so each is one batch: all OK or all failed.
      // The write-ahead log may still have room for a few commits.
      let failedAt: number | undefined
      let storedFrames = 20
      for (let t = t0; t < t0 + 2000 && failedAt === undefined; t++) {
        const lines = (await client.send(frame(t))).split('\n')
        assert.equal(lines.length, ROBOTS)
        if (lines[0] === 'OK') {
          assert.deepEqual(lines, Array(ROBOTS).fill('OK'), `frame ${t}`)
          storedFrames++
        } else {
          for (const line of lines) assert.match(line, unavailable)
          failedAt = t
        }
      }
      assert.ok(failedAt !== undefined, 'a commit failed on the full disk')
      // Still full: the same events fail again, nothing else is answered.
      for (const line of (await client.send(frame(failedAt))).split('\n')) {
        assert.match(line, unavailable)
      }

      // Reads are served meanwhile, and show exactly what was answered OK.
      assert.equal((await request(server, '/healthz')).status, 200)
      const robots = await getJson(server, '/api/robots')
      assert.equal(robots.status, 200)
      assert.equal((robots.body as unknown[]).length, ROBOTS)
      const robot = await getJson(server, '/api/robots/full-7')
      assert.equal(
        (robot.body as { event_count: number }).event_count,
        storedFrames,
      )
      const metrics = (await request(server, '/metrics')).text
      assert.match(metrics, /^telemetry_commits_failed_total [1-9]/m)

      // Space comes back: the failed frame is resent and stored, and ingest
      // goes on, on the same connection, without a restart.
      unlinkSync(filler)
      assert.equal(await client.send(frame(failedAt)), ok)
      assert.equal(await client.send(frame(failedAt + 1)), ok)
      await client.end()
      const events = await readEvents(server, 'full-7', {
        start_time: 0,
        end_time: failedAt + 1,
      })
      const timestamps = events.map((e) => e.timestamp)
      assert.deepEqual(
        timestamps,
        Array.from({ length: storedFrames + 2 }, (_, i) => i + 1),
      )
      assert.equal((await server.stop()).code, 0)
    },
  )
})

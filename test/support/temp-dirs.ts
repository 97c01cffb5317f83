/**
 * Temporary folders of a test or bench run: each one is removed by
 * {@link removeTempDir}, or when this process exits, whatever happened.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const tempDirs = new Set<string>()
process.on('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

/** A fresh folder under the system's temporary folder. */
export function makeTempDir(prefix = 'telemetry-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

/** Removes a folder made by {@link makeTempDir}, with everything in it. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

/**
 * Leaves a folder made by {@link makeTempDir} in place when this process
 * exits: to look at it after a failure.
 */
export function keepTempDir(dir: string): void {
  tempDirs.delete(dir)
}

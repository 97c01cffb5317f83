#!/usr/bin/env node
/**
 * Run by `npm install` (postinstall), here and where the package is
 * installed: guards postgres.js 3.4's `nextWrite` against a closed
 * connection.
 *
 * postgres.js sends a small message from a `setImmediate`; when the
 * connection closes before it runs (a database failover, a killed
 * backend), `socket.write` is called on `null` and the TypeError, thrown
 * from a timer, ends the process (porsager/postgres#1154, #1066, #1208;
 * fixes proposed in #1168, #1209, none released as of 3.4.9). The guard
 * drops the message and fails what waits on it with `CONNECTION_CLOSED`,
 * which the store answers `ERR unavailable`. The copies of the ESM and
 * CommonJS builds get it; a postgres.js without the unguarded line (a fixed
 * release) is left as it is. `src/store/postgres/postgres-driver.test.ts`
 * fails without it.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import console from 'node:console'
import process from 'node:process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const MARK = 'fleet-telemetry: porsager/postgres#1154'
const UNGUARDED = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`
const GUARDED = `  function nextWrite(fn) {
    if (!socket) { // ${MARK}
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`

/** The folder of the postgres.js this package resolves, or undefined. */
function postgresRoot() {
  let path
  try {
    path = createRequire(import.meta.url).resolve('postgres')
  } catch {
    return undefined // not installed (yet): nothing to guard
  }
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const { name } = JSON.parse(
        readFileSync(join(dir, 'package.json'), 'utf8'),
      )
      if (name === 'postgres') return dir
    } catch {
      // no package.json here
    }
  }
  return undefined
}

const root = postgresRoot()
if (root === undefined) process.exit(0)
for (const file of ['src/connection.js', 'cjs/src/connection.js']) {
  const path = join(root, file)
  let text
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    continue
  }
  if (text.includes(MARK) || !text.includes(UNGUARDED)) continue
  writeFileSync(path, text.replace(UNGUARDED, GUARDED))
  console.log(`guarded postgres.js nextWrite in ${path}`)
}

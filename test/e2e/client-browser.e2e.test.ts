/**
 * The client library in a browser: `fleet-telemetry/client` bundled by
 * esbuild for the browser (its `browser` export, which must import nothing
 * of Node), run in headless Chromium against the real server with access
 * control, its token sent as `?access_token=`.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import {
  accessFile,
  browserSkip,
  launchBrowser,
  makeTempDir,
  pageErrors,
  readEvents,
  removeTempDir,
  startServer,
} from '../support/index.ts'

/** The package's folder, from dist/test/e2e/. */
const PACKAGE = fileURLToPath(new URL('../../../', import.meta.url))

const skip = browserSkip()
if (skip !== false) console.log(`# skipping client browser tests: ${skip}`)

describe('the client library in a browser', { skip }, () => {
  test('should send events with its token and tell their outcomes', async (t) => {
    const bundled = await build({
      stdin: {
        contents: "export * from 'fleet-telemetry/client'",
        resolveDir: PACKAGE,
      },
      bundle: true,
      platform: 'browser',
      format: 'iife',
      globalName: 'FleetTelemetry',
      write: false,
      logLevel: 'silent',
    })
    const code = bundled.outputFiles[0]!.text
    assert.doesNotMatch(code, /require\("ws"\)|node:/, 'nothing of Node')

    const dir = makeTempDir('telemetry-client-')
    t.after(() => removeTempDir(dir))
    const server = await startServer([], {}, { access: accessFile(dir) })
    t.after(() => server.dispose())

    const browser = await launchBrowser()
    t.after(() => browser.close())
    const page = await browser.newPage()
    const errors = pageErrors(page)
    await page.setContent('<!doctype html><title>robot</title>')
    await page.addScriptTag({ content: code })
    const statuses = await page.evaluate(
      async ({ url, token }) => {
        const { connect } = (
          globalThis as unknown as {
            FleetTelemetry: typeof import('fleet-telemetry/client')
          }
        ).FleetTelemetry
        const client = connect(url, { token, robot: 'browser-bot' })
        const outcomes = await Promise.all([
          client.send(0, 0, 1),
          client.send(3, 4, 2),
          client.send(3, 4, 2),
          client.send(1, 1, 0),
          client.sendLine('1,1,3,someone else'),
        ])
        await client.close()
        return outcomes.map((o) => o.status)
      },
      { url: server.upstreamUrl, token: server.ingestToken! },
    )
    assert.deepEqual(statuses, [
      'stored',
      'stored',
      'duplicate',
      'stale',
      'stored',
    ])
    assert.deepEqual(await readEvents(server, 'browser-bot'), [
      { robot: 'browser-bot', x: 0, y: 0, timestamp: 1 },
      { robot: 'browser-bot', x: 3, y: 4, timestamp: 2 },
    ])
    assert.deepEqual(errors, [])
  })
})

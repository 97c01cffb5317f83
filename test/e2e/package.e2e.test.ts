/**
 * The package as a user gets it: `npm pack` of the built tree, installed
 * with `npm install <tarball>` into an empty folder (dependencies from the
 * npm cache or the registry; better-sqlite3 builds there). Its `bin`
 * serves, replays a file and answers `--help`; a script of the empty
 * folder imports `fleet-telemetry/client` and sends through it.
 *
 * Slow (a minute or two, most of it compiling better-sqlite3): it runs
 * beside the other tests.
 */
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import {
  makeTempDir,
  readEvents,
  removeTempDir,
  runProcess,
  startListening,
  type ListeningProcess,
} from '../support/index.ts'

/** The package's folder, from dist/test/e2e/. */
const PACKAGE = fileURLToPath(new URL('../../../', import.meta.url))
const INSTALL_MS = 480_000

describe('the npm package', () => {
  test(
    'should install into an empty folder, with a working bin and client',
    { timeout: INSTALL_MS + 120_000 },
    async (t) => {
      const dir = makeTempDir('telemetry-package-')
      t.after(() => removeTempDir(dir))
      // The tree is built already (npm test builds first): no prepack build,
      // which would replace dist/ under the other tests.
      const packed = await runProcess(
        'npm',
        ['pack', '--ignore-scripts', '--json', '--pack-destination', dir],
        { cwd: PACKAGE },
      )
      assert.equal(packed.code, 0, packed.stderr)
      const [{ filename, files }] = JSON.parse(packed.stdout) as [
        { filename: string; files: { path: string }[] },
      ]
      const paths = files.map((f) => f.path)
      for (const path of [
        'dist/src/cli.js',
        'dist/src/client/node.js',
        'dist/src/client/browser.js',
        'dist/web/index.html',
        'docs/client.md',
        'docs/cli.md',
      ]) {
        assert.ok(paths.includes(path), `the package holds ${path}`)
      }
      assert.deepEqual(
        paths.filter((p) => /\.test\.js$|^dist\/(test|bench)\//.test(p)),
        [],
        'no tests and no benchmark',
      )

      const app = join(dir, 'app')
      const npm = (args: string[]) =>
        runProcess('npm', args, { cwd: app, timeoutMs: INSTALL_MS })
      mkdirSync(app)
      writeFileSync(
        join(app, 'package.json'),
        JSON.stringify({
          name: 'robot-app',
          private: true,
          type: 'module',
          // npm 11 runs only the install scripts a project allows; the
          // package's guards postgres.js (scripts/patch-postgres.mjs).
          allowScripts: { 'better-sqlite3': true, 'fleet-telemetry': true },
        }),
      )
      const installed = await npm([
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        join(dir, filename),
      ])
      assert.equal(installed.code, 0, installed.stderr)
      assert.equal(installed.timedOut, false)
      for (const build of ['src', 'cjs/src']) {
        const connection = join(
          app,
          'node_modules/postgres',
          build,
          'connection.js',
        )
        assert.match(
          readFileSync(connection, 'utf8'),
          /fleet-telemetry: porsager\/postgres#1154/,
          `postgres.js's nextWrite guarded in ${build}`,
        )
      }

      const bin = join(app, 'node_modules', '.bin', 'fleet-telemetry')
      const help = await runProcess(bin, ['--help'], { cwd: app })
      assert.equal(help.code, 0, help.stderr)
      for (const command of ['serve', 'simulate', 'replay', 'export']) {
        assert.match(help.stdout, new RegExp(`\\b${command}\\b`))
      }

      const server: ListeningProcess = await startListening(
        bin,
        ['serve', '--port', '0', '--store', `sqlite:${join(app, 't.db')}`],
        { cwd: app },
      )
      t.after(async () => {
        server.kill('SIGKILL')
        await server.exited
      })

      writeFileSync(
        join(app, 'robot.js'),
        `import { connect } from 'fleet-telemetry/client'
const client = connect(process.argv[2], { robot: 'packaged' })
const outcomes = await Promise.all([client.send(0, 0, 1), client.send(3, 4, 2)])
await client.close()
console.log(outcomes.map((o) => o.status).join(' '))
`,
      )
      const robot = await runProcess(
        process.execPath,
        ['robot.js', server.upstreamUrl],
        { cwd: app },
      )
      assert.equal(robot.code, 0, robot.stderr)
      assert.equal(robot.stdout.trim(), 'stored stored')

      writeFileSync(
        join(app, 'log.csv'),
        'x,y,timestamp,robot_name\r\n6,8,3,packaged\r\n0,0,1,other\r\n',
      )
      const replay = await runProcess(
        bin,
        ['replay', 'log.csv', '--url', server.url],
        { cwd: app },
      )
      assert.equal(replay.code, 0, replay.stderr)
      assert.deepEqual(await readEvents(server, 'packaged'), [
        { robot: 'packaged', x: 0, y: 0, timestamp: 1 },
        { robot: 'packaged', x: 3, y: 4, timestamp: 2 },
        { robot: 'packaged', x: 6, y: 8, timestamp: 3 },
      ])
    },
  )
})

#!/usr/bin/env node
/**
 * The command line: `fleet-telemetry [serve] [--host H] [--port P] [--store URL]`,
 * `fleet-telemetry token create|list` (auth/token-command.ts), and the
 * commands of cli/ (`simulate`, `replay`, `export`; docs/cli.md). Each
 * command's module is loaded only when it runs, so that `--help` and the
 * server start without them.
 * Exit codes: 0 after a clean shutdown, 1 when the server cannot start,
 * 2 for unknown flags or bad values.
 */
import { setFlagsFromString } from 'node:v8'
import { TokensError } from './auth/tokens.ts'
import { ConfigError, loadConfig, usage } from './config.ts'
import type { TelemetryServer } from './server.ts'
import { redactStoreUrl } from './store/store.ts'

/**
 * How far V8 lets the heap grow past what its last full collection kept,
 * in percent, unless `node --heap-growing-percent=N` says otherwise. V8's
 * own factor goes up to 4× when collections are cheap, and under a flood
 * the server's main thread then held 150 MB of garbage over 40 MB live
 * (docs/reliability.md, "Memory model"); at 50 % its peak was 40 MB lower, at
 * the same events a second.
 */
const HEAP_GROWING_PERCENT = 50

async function main(): Promise<number | undefined> {
  const [command, ...rest] = process.argv.slice(2)
  if (command === 'token') {
    const { runTokenCommand } = await import('./auth/token-command.ts')
    return runTokenCommand(rest, process.env, {
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
    })
  }
  if (command === 'simulate') {
    const { runSimulate } = await import('./cli/simulate.ts')
    return runSimulate(rest)
  }
  if (command === 'replay') {
    const { runReplay } = await import('./cli/replay.ts')
    return runReplay(rest)
  }
  if (command === 'export') {
    const { runExport } = await import('./cli/export.ts')
    return runExport(rest)
  }
  // `serve`, or no command: the server.
  const args = command === 'serve' ? rest : process.argv.slice(2)
  if (!process.execArgv.some((a) => a.startsWith('--heap-growing-percent'))) {
    setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
  }
  let config
  try {
    config = loadConfig(args, process.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`fleet-telemetry: ${error.message}\n\n${usage()}`)
    return 2
  }
  if (config === 'help') {
    process.stdout.write(usage())
    return 0
  }

  // Loaded only now, so that a usage error answers at once.
  const { startServer } = await import('./server.ts')
  let server: TelemetryServer | undefined
  // Taken from the start: Node's own SIGHUP would end the process. One
  // that comes before the server listens has nothing to re-read yet.
  process.on('SIGHUP', () => {
    if (server === undefined) return
    server.logger.info({ signal: 'SIGHUP' }, 'reloading')
    server.reload()
  })
  try {
    server = await startServer(config)
  } catch (error) {
    process.stderr.write(
      `fleet-telemetry: cannot start: ${(error as Error).message}\n`,
    )
    // A file the flags name that cannot be used is a bad value.
    return error instanceof TokensError || error instanceof ConfigError ? 2 : 1
  }
  const access =
    server.tokens === undefined
      ? 'no access control'
      : `access control: ${server.tokens} token${server.tokens === 1 ? '' : 's'}`
  const reads =
    config.readStore === '' ? '' : `; reads ${redactStoreUrl(config.readStore)}`
  process.stdout.write(
    `listening on ${server.url} (store ${redactStoreUrl(config.store)}${reads}) (${access})\n`,
  )

  const stop = (signal: string) => {
    server.logger.info({ signal }, 'shutting down')
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.logger.error({ err: error }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  return undefined
}

const code = await main()
if (code !== undefined) process.exitCode = code

/**
 * Wires the store, the ingest endpoint and the HTTP API into one server.
 * This is the only module that chooses a store backend.
 */
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { createSecureContext, type Server as TlsServer } from 'node:tls'
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyReply,
} from 'fastify'
import { pino, type Logger } from 'pino'
import { dashboardPaths, registerDashboard } from './api/dashboard.ts'
import { registerLive } from './api/live.ts'
import { registerMcap } from './api/mcap.ts'
import { registerApi } from './api/routes.ts'
import { Access, type Refused } from './auth/access.ts'
import { registerAccess } from './auth/http-access.ts'
import { TokenBuckets } from './auth/rate.ts'
import { ConfigError, type Config } from './config.ts'
import { errorBody, rawHttpError, TelemetryError } from './errors.ts'
import { createBatcher } from './ingest/batcher.ts'
import { InflightBudget } from './ingest/budget.ts'
import { createUpstream } from './ingest/upstream.ts'
import { CommitFanout } from './live/fanout.ts'
import { LiveFeed } from './live/feed.ts'
import { createMetrics } from './metrics.ts'
import { FOXGLOVE_PATH } from './robotics/constants.ts'
import { FoxgloveEndpoint } from './robotics/foxglove-endpoint.ts'
import { openStore } from './store/open.ts'
import { startRetention, type Retention } from './store/retention.ts'
import type { Store } from './store/store.ts'

/** A started server. */
export interface TelemetryServer {
  /** `http://HOST:PORT`, with the port actually bound. */
  readonly url: string
  readonly store: Store
  readonly logger: Logger
  /** How many tokens it accepts; `undefined` without access control. */
  readonly tokens: number | undefined
  /**
   * Re-reads the tokens file and the TLS certificate (SIGHUP). What cannot
   * be read is logged and the old one kept. Connections of a revoked token
   * are closed with 1008.
   */
  reload(): void
  /**
   * Stops accepting and the retention passes, answers every event already
   * received (committed ones `OK`), closes every connection, waits for a
   * retention pass in progress, and closes the store. Idempotent.
   */
  close(): Promise<void>
}

/** Options of {@link startServer} beyond the configuration. */
export interface ServerOptions {
  /** Where logs go; defaults to JSON lines on stderr at `config.logLevel`. */
  readonly logger?: Logger
  /** How long `close()` lets HTTP responses in progress finish; default 5000. */
  readonly shutdownGraceMs?: number
}

/**
 * Opens the store, then listens for HTTP and WebSocket traffic.
 *
 * @example
 * const server = await startServer({ ...DEFAULT_CONFIG, port: 0 })
 * console.log(server.url)
 * await server.close()
 */
export async function startServer(
  config: Config,
  options: ServerOptions = {},
): Promise<TelemetryServer> {
  const logger =
    options.logger ?? pino({ level: config.logLevel }, pino.destination(2))
  // Read before anything opens: a file that cannot be used stops the start.
  const access = config.tokens === '' ? undefined : new Access(config.tokens)
  const tls = config.tlsCert === '' ? undefined : readTls(config)
  const store = await openStore(config.store, {
    sync: config.sync,
    // Only a crash ends the thread early; every call fails from then on.
    onExit: (error) => logger.fatal({ err: error }, 'store thread stopped'),
  })
  // The HTTP API's reads go to a replica with --read-store (opened after
  // the store, which migrates the schema the replica waits for); ingest,
  // deletes and the live feed stay on the primary.
  const reads =
    config.readStore === ''
      ? store
      : await openStore(config.readStore, { readOnly: true })
  const closeStores = async () => {
    await store.close()
    if (reads !== store) await reads.close()
  }
  try {
    await store.init()
    if (reads !== store) await reads.init()
  } catch (error) {
    await closeStores().catch(() => {})
    throw error
  }

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One log line per request would drown the useful ones.
    logController: new LogController({ disableRequestLogging: true }),
    // Robot names reach 150 characters, up to 12 URL characters each.
    routerOptions: { maxParamLength: 4096 },
    // Requests on open keep-alive connections are still served while the
    // server drains: the store closes only after them.
    return503OnClosing: false,
    // Node would answer a request without Host with an empty 400; the hook
    // below answers it with the catalog's body instead.
    http: { requireHostHeader: false },
    // The same on https (Fastify gives `http` only to an http server). The
    // server is typed as http's: an https server has its every member.
    ...((tls === undefined
      ? {}
      : { https: { ...tls, requireHostHeader: false } }) as object),
    frameworkErrors: (error, request, reply) => {
      const known = new TelemetryError(
        error.code === 'FST_ERR_BAD_URL' ? 'INVALID_URL' : 'BAD_REQUEST',
        {
          message:
            error.code === 'FST_ERR_BAD_URL'
              ? 'the URL has broken percent-encoding'
              : undefined,
        },
      )
      void (reply as FastifyReply).code(known.status).send(errorBody(known))
    },
    clientErrorHandler: (error, socket) => {
      if (!socket.writable) return socket.destroy()
      const tooLarge =
        (error as { code?: string }).code === 'HPE_HEADER_OVERFLOW'
      socket.end(
        rawHttpError(
          new TelemetryError(tooLarge ? 'HEADERS_TOO_LARGE' : 'BAD_REQUEST'),
        ),
      )
    },
  })
  // RFC 9112 §3.2: an HTTP/1.1 request without Host is a bad request.
  app.addHook('onRequest', async (request, reply) => {
    if (
      request.raw.httpVersion === '1.1' &&
      request.headers.host === undefined
    ) {
      const error = new TelemetryError('BAD_REQUEST', {
        message: 'an HTTP/1.1 request needs a Host header',
      })
      // Like any request that is not valid HTTP: answered, then closed.
      return reply
        .code(error.status)
        .header('connection', 'close')
        .send(errorBody(error))
    }
  })
  // CONNECT never reaches a route: Node hands the socket over instead.
  app.server.on('connect', (_request, socket: Duplex) => {
    socket.end(
      rawHttpError(
        new TelemetryError('ROUTE_NOT_FOUND', {
          message: 'CONNECT is not supported',
        }),
      ),
    )
  })
  const budget = new InflightBudget(config.maxInflightBytes)
  const metrics = createMetrics({
    bytesInFlight: () => budget.bytes,
    robotsInMemory: store.robotsInMemory?.bind(store),
    storeHealth: store.health?.bind(store),
  })
  // Counted and logged, with the token's name when known; never the token.
  const onRefused = (refused: Refused, remote: string | undefined) => {
    metrics.authFailures[refused.reason].inc()
    logger.warn(
      { reason: refused.reason, token: refused.name, remote },
      `access refused: ${refused.error.message}`,
    )
  }

  const batcher = createBatcher(store, {
    onCommit: (events, ms) => {
      metrics.commitEvents.observe(events)
      metrics.commitSeconds.observe(ms / 1000)
    },
    onCommitError: (error, events, queued) => {
      if (!queued) metrics.commitsFailed.inc()
      logger.error({ err: error, events }, 'commit failed')
    },
  })
  const upstream = createUpstream({
    batcher,
    logger,
    metrics,
    maxFrameBytes: config.maxFrameBytes,
    maxLinesPerFrame: config.maxLinesPerFrame,
    maxConnections: config.maxConnections,
    maxFramesInFlight: config.maxFramesInFlight,
    maxConnectionInflightBytes: config.maxConnectionInflightBytes,
    budget,
    keepaliveMs: config.keepaliveMs,
    access,
    maxTokenConnections: config.maxTokenConnections,
    eventRate:
      config.maxTokenEventsPerSecond > 0
        ? new TokenBuckets(config.maxTokenEventsPerSecond)
        : undefined,
    onRefused,
  })
  // Everything live is told of commits by one watch of the store.
  const commits = new CommitFanout(store)
  const feed = new LiveFeed(store, {
    hz: config.liveHz,
    maxStreams: config.maxLiveStreams,
    maxBufferBytes: config.liveBufferBytes,
    metrics: metrics.live,
    commits,
  })
  const foxglove = new FoxgloveEndpoint({
    store,
    commits,
    logger,
    hz: config.liveHz,
    maxClients: config.maxLiveStreams,
    maxBufferBytes: config.liveBufferBytes,
    keepaliveMs: config.keepaliveMs,
    access,
    metrics: metrics.foxglove,
    onRefused,
  })
  // The two WebSocket endpoints; upstream answers any other path 404.
  app.server.on('upgrade', (request, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? '').split('?', 1)[0]
    if (path === FOXGLOVE_PATH) foxglove.handleUpgrade(request, socket, head)
    else upstream.handleUpgrade(request, socket, head)
  })

  try {
    if (access !== undefined) {
      await registerAccess(app, {
        access,
        metrics,
        openPaths: new Set(['/healthz', ...dashboardPaths()]),
        maxRequestsPerSecond: config.maxTokenRequestsPerSecond,
        onRefused,
      })
    }
    await registerApi(app, { store, reads, metrics })
    await registerMcap(app, { reads })
    await registerLive(app, { feed })
    await registerDashboard(app)
    await app.listen({ host: config.host, port: config.port })
  } catch (error) {
    await closeStores()
    throw error
  }
  // Started once nothing can fail the start any more: the first pass runs
  // now, in the background, while the server serves.
  const retention: Retention | undefined =
    config.retain === 0
      ? undefined
      : startRetention({
          store,
          retainMs: config.retain,
          everyMs: config.retainEvery,
          logger,
          metrics: metrics.retention,
        })
  const address = app.server.address() as AddressInfo
  const host =
    address.family === 'IPv6' ? `[${address.address}]` : address.address

  let closing: Promise<void> | undefined
  function reload() {
    if (access !== undefined) {
      try {
        access.reload()
        logger.info({ tokens: access.size }, 'tokens file re-read')
        upstream.revoke()
        foxglove.revoke()
      } catch (error) {
        logger.error(
          { err: error },
          'the tokens file cannot be used; the tokens read before still apply',
        )
      }
    }
    if (tls !== undefined) {
      try {
        ;(app.server as unknown as TlsServer).setSecureContext(readTls(config))
        logger.info('TLS certificate re-read')
      } catch (error) {
        logger.error(
          { err: error },
          'the TLS certificate cannot be used; the one read before still applies',
        )
      }
    }
  }

  return {
    url: `${tls === undefined ? 'http' : 'https'}://${host}:${address.port}`,
    store,
    logger,
    tokens: access?.size,
    reload,
    close() {
      closing ??= (async () => {
        // No pass starts from now on; one in progress ends before the store
        // closes.
        const retentionStopped = retention?.close()
        const httpClosed = app.close()
        await upstream.close()
        // Live streams never end by themselves. Ended after ingest: the
        // last commits reach them first.
        feed.close()
        foxglove.close()
        // A client that stops reading a streamed response would hold the
        // shutdown forever: past the grace period its connection is cut.
        const grace = setTimeout(
          () => app.server.closeAllConnections(),
          options.shutdownGraceMs ?? 5000,
        )
        await httpClosed
        clearTimeout(grace)
        await retentionStopped
        await closeStores()
      })()
      return closing
    },
  }
}

/** The certificate and key files of `--tls-cert` and `--tls-key`, checked. */
function readTls(config: Config): { cert: Buffer; key: Buffer } {
  const read = (path: string, flag: string) => {
    try {
      return readFileSync(path)
    } catch (error) {
      throw new ConfigError(
        `cannot read ${flag} ${path}: ${(error as Error).message}`,
      )
    }
  }
  const pair = {
    cert: read(config.tlsCert, '--tls-cert'),
    key: read(config.tlsKey, '--tls-key'),
  }
  try {
    // Checks that both parse and belong together.
    createSecureContext(pair)
  } catch (error) {
    throw new ConfigError(
      `--tls-cert ${config.tlsCert} and --tls-key ${config.tlsKey} cannot be used: ${(error as Error).message}`,
    )
  }
  return pair
}

/**
 * Access control on HTTP (docs/security.md): every request but
 * `GET /healthz` and the dashboard's static files needs a token whose role
 * meets the route's need (`config.need`: to read unless the route says
 * otherwise, as `DELETE /api/robots/{robot}` does), and, with
 * `--max-token-requests-per-second`, no more than that many requests a
 * second per token (`@fastify/rate-limit`, keyed by the token's name).
 */
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import { errorBody, TelemetryError } from '../errors.ts'
import type { Metrics } from '../metrics.ts'
import {
  CHALLENGE,
  isRefused,
  type Access,
  type Need,
  type Refused,
} from './access.ts'
import type { Identity } from './tokens.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request, with access control on. */
    identity: Identity | null
  }
  interface FastifyContextConfig {
    /** What a token's role must meet to use the route; default `read`. */
    need?: Need
  }
}

/** Options of {@link registerAccess}. */
export interface HttpAccessOptions {
  readonly access: Access
  readonly metrics: Metrics
  /**
   * Paths served to anyone: `/healthz` (load balancers probe it) and the
   * dashboard's files, which hold no data.
   */
  readonly openPaths: ReadonlySet<string>
  /** Requests a second of one token; 0: no limit. */
  readonly maxRequestsPerSecond: number
  /** Tells of a refused token: counted and logged by the server. */
  readonly onRefused: (refused: Refused, remote: string | undefined) => void
}

/** Adds the access check (and the rate limit) to every route registered after it. */
export async function registerAccess(
  app: FastifyInstance,
  options: HttpAccessOptions,
): Promise<void> {
  const { access, metrics } = options
  app.decorateRequest('identity', null)
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?', 1)[0]
    if (options.openPaths.has(path!)) return
    const checked = access.check(
      {
        authorization: request.headers.authorization,
        url: request.url,
        queryAllowed: request.method === 'GET' || request.method === 'HEAD',
      },
      // Routes that match no request (the not-found handler) need `read`,
      // so a reader still gets 404 ROUTE_NOT_FOUND for them.
      request.routeOptions.config.need ?? 'read',
    )
    if (isRefused(checked)) {
      options.onRefused(checked, request.socket.remoteAddress)
      if (checked.error.code === 'UNAUTHORIZED') reply.headers(CHALLENGE)
      return reply
        .code(checked.error.status)
        .type('application/json')
        .send(errorBody(checked.error))
    }
    request.identity = checked
    // RFC 6750 §2.3: an answer to a URL that holds a token is not for
    // shared caches.
    if (request.url.includes('access_token=')) {
      reply.header('cache-control', 'private')
    }
  })
  if (options.maxRequestsPerSecond === 0) return
  const max = options.maxRequestsPerSecond
  await app.register(rateLimit, {
    max,
    timeWindow: 1000,
    // Runs after the access check above: every request here has a name.
    keyGenerator: (request) => request.identity?.name ?? '',
    allowList: (request) => request.identity === null,
    onExceeded: () => metrics.tokenLimited.requests.inc(),
    errorResponseBuilder: (request) =>
      new TelemetryError('TOO_MANY_REQUESTS', {
        message: `token "${request.identity?.name ?? ''}" is over ${max} requests a second`,
      }),
  })
}

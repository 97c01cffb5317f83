/**
 * Access control (docs/security.md): who a request is, and whether its role
 * may use what it asks for. Every HTTP request and every ingest upgrade
 * passes {@link Access.check} once; the ingest lines of a connection are then
 * judged against its identity (upstream.ts).
 *
 * Without a tokens file there is no access control: every check passes with
 * no identity.
 */
import { rawHttpError, TelemetryError } from '../errors.ts'
import {
  readTokensFile,
  type Identity,
  type Role,
  type TokenTable,
} from './tokens.ts'

/**
 * What a request asks to do: write events (`/upstream`), read anything but
 * `/healthz`, or delete a robot (`DELETE /api/robots/{robot}`).
 */
export const NEEDS = ['ingest', 'read', 'delete'] as const
export type Need = (typeof NEEDS)[number]

/**
 * Which needs each role meets: the one table of who may do what
 * (docs/security.md, "What is protected").
 */
const GRANTS: Readonly<Record<Role, readonly Need[]>> = {
  ingest: ['ingest'],
  read: ['read'],
  admin: ['ingest', 'read', 'delete'],
}

/** Why a role may not: the message of its 403. */
function forbidden(role: Role, need: Need): string {
  const a = role === 'ingest' || role === 'admin' ? 'an' : 'a'
  switch (need) {
    case 'ingest':
      return `${a} ${role} token may not write events`
    case 'read':
      return `${a} ${role} token may only write events on /upstream`
    case 'delete':
      return `${a} ${role} token may not delete robots: only an admin token may`
  }
}

/** What a request presented: its headers and the query of its URL. */
export interface Credentials {
  readonly authorization: string | undefined
  /** The request's URL, whose `access_token` parameter is read, when allowed. */
  readonly url: string | undefined
  /** Whether the token may come as `access_token` (GET, HEAD, upgrades). */
  readonly queryAllowed: boolean
}

/** Why a request was refused, as the `reason` label of the metrics. */
export const REFUSALS = ['missing', 'unknown', 'forbidden'] as const
export type Refusal = (typeof REFUSALS)[number]

/** A refused request: the catalog error to answer and what the log says. */
export interface Refused {
  readonly error: TelemetryError
  readonly reason: Refusal
  /** The token's name, when the token is known. */
  readonly name?: string
}

/** The header of every 401 (RFC 6750 §3). */
export const CHALLENGE = {
  'WWW-Authenticate': 'Bearer realm="fleet-telemetry"',
}

/**
 * The token a request presents: `Authorization: Bearer …`, or the
 * `access_token` query parameter (RFC 6750 §2.3) where allowed. A request
 * with none gives `undefined`; one with two, or with another scheme, gives
 * an error message.
 */
export function presentedToken(
  credentials: Credentials,
): string | undefined | { readonly invalid: string } {
  const { authorization } = credentials
  let fromHeader: string | undefined
  if (authorization !== undefined) {
    const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(authorization)
    if (match === null) {
      return { invalid: 'the Authorization header must be "Bearer <token>"' }
    }
    fromHeader = match[1]
  }
  const url = credentials.url ?? ''
  const query = url.indexOf('?')
  // Most requests have no query: no URL object for them.
  const fromQuery =
    query < 0 || !url.includes('access_token', query)
      ? []
      : new URLSearchParams(url.slice(query + 1)).getAll('access_token')
  if (fromQuery.length === 0) return fromHeader
  if (!credentials.queryAllowed) {
    return {
      invalid: 'access_token is taken on GET requests and upgrades only',
    }
  }
  if (fromQuery.length > 1 || fromHeader !== undefined) {
    // RFC 6750 §2: one method, once.
    return { invalid: 'give the token once: a Bearer header or access_token' }
  }
  return fromQuery[0]
}

/** Access control over the tokens of one file, re-read by {@link reload}. */
export class Access {
  readonly file: string
  #table: TokenTable

  /** Reads the tokens file; throws `TokensError` when it cannot be used. */
  constructor(file: string) {
    this.file = file
    this.#table = readTokensFile(file)
  }

  /** How many tokens the file holds. */
  get size(): number {
    return this.#table.entries.length
  }

  /**
   * Re-reads the file. On success the new tokens apply at once and the
   * call returns; when the file cannot be used, it throws `TokensError` and
   * the old tokens stay.
   */
  reload(): void {
    this.#table = readTokensFile(this.file)
  }

  /**
   * The identity of a token's SHA-256 now, if its role still meets `need`;
   * `undefined` once it is revoked (or its role changed to one that may not).
   */
  current(identity: Identity, need: Need): Identity | undefined {
    const now = this.#table.byDigest(identity.digest)
    return now !== undefined && GRANTS[now.role].includes(need)
      ? now
      : undefined
  }

  /** Who presents `credentials`, or why they are refused for `need`. */
  check(credentials: Credentials, need: Need): Identity | Refused {
    const token = presentedToken(credentials)
    if (token === undefined) {
      return {
        reason: 'missing',
        error: new TelemetryError('UNAUTHORIZED', {
          message: 'a token is needed: Authorization: Bearer <token>',
        }),
      }
    }
    if (typeof token !== 'string') {
      return {
        reason: 'missing',
        error: new TelemetryError('UNAUTHORIZED', { message: token.invalid }),
      }
    }
    const identity = this.#table.identify(token)
    if (identity === undefined) {
      return {
        reason: 'unknown',
        error: new TelemetryError('UNAUTHORIZED', {
          message: 'the token is not valid',
        }),
      }
    }
    if (!GRANTS[identity.role].includes(need)) {
      return {
        reason: 'forbidden',
        name: identity.name,
        error: new TelemetryError('FORBIDDEN', {
          message: forbidden(identity.role, need),
        }),
      }
    }
    return identity
  }
}

/** Whether a check refused. */
export function isRefused(result: Identity | Refused): result is Refused {
  return 'error' in result
}

/** What a WebSocket upgrade presents: its headers and its URL. */
interface UpgradeRequest {
  readonly headers: { readonly authorization?: string }
  readonly url?: string
}

/**
 * Checks the token of a WebSocket upgrade (`/upstream`, `/foxglove`) for
 * `need`: a Bearer header, or `access_token` in the URL, as browsers and
 * desktop viewers cannot set headers on a WebSocket.
 */
export function checkUpgrade(
  access: Access,
  request: UpgradeRequest,
  need: Need,
): Identity | Refused {
  return access.check(
    {
      authorization: request.headers.authorization,
      url: request.url,
      queryAllowed: true,
    },
    need,
  )
}

/** The raw HTTP answer to a refused upgrade: 401 with the challenge, or 403. */
export function refusedUpgradeAnswer(refused: Refused): string {
  return rawHttpError(
    refused.error,
    refused.error.code === 'UNAUTHORIZED' ? CHALLENGE : {},
  )
}

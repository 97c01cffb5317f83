/**
 * Access tokens (issue 11): the tokens file, who a presented token is, and
 * which robots an ingest token may write.
 *
 * The file (`--tokens FILE`) is a JSON array of entries
 * `{"name", "token_sha256", "role", "robots"?}`. Only the SHA-256 of each
 * token is stored. A token is 256 random bits ({@link createToken}), so
 * nobody can guess one or find it from its hash: a slow password hash
 * (bcrypt, scrypt) protects low-entropy secrets and would only cost every
 * request its time. The digest of a presented token is looked up, then
 * compared with `timingSafeEqual`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import {
  chmodSync,
  existsSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs'

/** What a token may do (docs/security.md). */
export const ROLES = ['ingest', 'read', 'admin'] as const
export type Role = (typeof ROLES)[number]

/** One entry of the tokens file, as written. */
export interface TokenEntry {
  readonly name: string
  /** SHA-256 of the token, 64 lowercase hexadecimal digits. */
  readonly token_sha256: string
  readonly role: Role
  /** Ingest only: exact robot names, or prefixes ending in `*`. */
  readonly robots?: readonly string[]
}

/** Who presented a known token. */
export interface Identity {
  readonly name: string
  readonly role: Role
  /** The token's SHA-256, to find it again after the file is re-read. */
  readonly digest: string
  /** Whether this identity may write events of `robot`. */
  mayWrite(robot: string): boolean
}

/** A tokens file that cannot be used, with what is wrong and where. */
export class TokensError extends Error {
  override readonly name = 'TokensError'
}

/** The tokens of one file, ready to identify presented tokens. */
export class TokenTable {
  readonly entries: readonly TokenEntry[]
  readonly #byDigest: ReadonlyMap<string, { digest: Buffer; who: Identity }>

  constructor(entries: readonly TokenEntry[]) {
    this.entries = entries
    const byDigest = new Map<string, { digest: Buffer; who: Identity }>()
    for (const entry of entries) {
      byDigest.set(entry.token_sha256, {
        digest: Buffer.from(entry.token_sha256, 'hex'),
        who: identity(entry),
      })
    }
    this.#byDigest = byDigest
  }

  /** Who `token` belongs to, or `undefined` for an unknown token. */
  identify(token: string): Identity | undefined {
    const digest = createHash('sha256').update(token, 'utf8').digest()
    const known = this.#byDigest.get(digest.toString('hex'))
    if (known === undefined || !timingSafeEqual(known.digest, digest)) {
      return undefined
    }
    return known.who
  }

  /** The identity of a token's SHA-256, `undefined` when the file lacks it. */
  byDigest(digest: string): Identity | undefined {
    return this.#byDigest.get(digest)?.who
  }
}

function identity(entry: TokenEntry): Identity {
  const { name, role, token_sha256: digest } = entry
  if (role !== 'ingest' || entry.robots === undefined) {
    // Read tokens write nothing; admin and unscoped ingest tokens write all.
    const all = role !== 'read'
    return { name, role, digest, mayWrite: () => all }
  }
  const exact = new Set<string>()
  const prefixes: string[] = []
  for (const pattern of entry.robots) {
    if (pattern.endsWith('*')) prefixes.push(pattern.slice(0, -1))
    else exact.add(pattern)
  }
  return {
    name,
    role,
    digest,
    mayWrite: (robot) =>
      exact.has(robot) || prefixes.some((prefix) => robot.startsWith(prefix)),
  }
}

const DIGEST = /^[0-9a-f]{64}$/
const KEYS = new Set(['name', 'token_sha256', 'role', 'robots'])

/**
 * Reads the text of a tokens file; `source` names it in errors. Throws
 * {@link TokensError} saying which entry and which field is wrong.
 */
export function parseTokens(text: string, source: string): TokenTable {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new TokensError(`${source} is not JSON: ${(error as Error).message}`)
  }
  if (!Array.isArray(data)) {
    throw new TokensError(`${source} must hold a JSON array of tokens`)
  }
  const names = new Set<string>()
  const digests = new Set<string>()
  const entries = data.map((item: unknown, i): TokenEntry => {
    const where = `${source}: entry ${i + 1}`
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new TokensError(`${where} is not an object`)
    }
    const fields = item as Record<string, unknown>
    for (const key of Object.keys(fields)) {
      if (!KEYS.has(key))
        throw new TokensError(`${where} has unknown field "${key}"`)
    }
    const { name, token_sha256: digest, role, robots } = fields
    if (typeof name !== 'string' || name.length === 0) {
      throw new TokensError(`${where}: "name" must be a non-empty string`)
    }
    const named = `${source}: token "${name}"`
    if (names.has(name)) throw new TokensError(`${named} appears twice`)
    names.add(name)
    if (typeof digest !== 'string' || !DIGEST.test(digest.toLowerCase())) {
      throw new TokensError(
        `${named}: "token_sha256" must be 64 hexadecimal digits (the SHA-256 of the token)`,
      )
    }
    const sha256 = digest.toLowerCase()
    if (digests.has(sha256)) {
      throw new TokensError(`${named} has the hash of an earlier token`)
    }
    digests.add(sha256)
    if (!(ROLES as readonly unknown[]).includes(role)) {
      throw new TokensError(
        `${named}: "role" must be one of ${ROLES.join(', ')}`,
      )
    }
    if (robots === undefined) {
      return { name, token_sha256: sha256, role: role as Role }
    }
    if (role !== 'ingest') {
      throw new TokensError(
        `${named}: "robots" applies to ingest tokens only, not to ${String(role)}`,
      )
    }
    if (
      !Array.isArray(robots) ||
      !robots.every((r) => typeof r === 'string' && r.length > 0)
    ) {
      throw new TokensError(
        `${named}: "robots" must be an array of robot names or prefixes ending in *`,
      )
    }
    return {
      name,
      token_sha256: sha256,
      role: 'ingest',
      robots: robots as string[],
    }
  })
  return new TokenTable(entries)
}

/** A new token, 256 random bits in base64url, and its SHA-256. */
export function createToken(): { token: string; sha256: string } {
  const token = randomBytes(32).toString('base64url')
  return { token, sha256: sha256Hex(token) }
}

/** The SHA-256 of a token, as the tokens file holds it. */
export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** Reads and checks a tokens file. */
export function readTokensFile(path: string): TokenTable {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new TokensError(
      `cannot read the tokens file ${path}: ${(error as Error).message}`,
    )
  }
  return parseTokens(text, path)
}

/**
 * Adds an entry to a tokens file, creating it when missing. The file is
 * written whole beside the old one and renamed over it, with mode 0600:
 * a server that re-reads it meanwhile sees the old file or the new one,
 * never half of one. Throws {@link TokensError} when the file does not
 * parse or the entry clashes with one already there.
 */
export function addTokenToFile(path: string, entry: TokenEntry): void {
  const before = existsSync(path) ? readTokensFile(path).entries : []
  const entries = [...before, entry]
  const text = `${JSON.stringify(entries, null, 2)}\n`
  // The same checks as a server reading the result.
  parseTokens(text, path)
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, text, { mode: 0o600 })
  chmodSync(temporary, 0o600)
  renameSync(temporary, path)
}

/**
 * Tokens files for servers started with access control (docs/security.md):
 * written as `fleet-telemetry token create` writes them, a JSON array of
 * `{name, token_sha256, role, robots?}`, with the tokens kept here.
 *
 * @example
 * const tokens = writeTokens(join(dir, 'tokens.json'), [{ name: 'ops', role: 'admin' }])
 * const server = await startServer(['--tokens', tokens.file])
 * await readEvents({ url: server.url, token: tokens.ops }, 'Bender')
 */
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ServerAccess } from './server-process.ts'

/** One token to make: its name, role and, for ingest, robot patterns. */
export interface TokenSpec {
  readonly name: string
  readonly role: 'ingest' | 'read' | 'admin'
  readonly robots?: readonly string[]
}

/** A written tokens file, and each token by name. */
export type TokensFile = { readonly file: string } & Readonly<
  Record<string, string>
>

/** A fresh random token, 256 bits in base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url')
}

/** The file entry of a token. */
export function tokenEntry(spec: TokenSpec, token: string) {
  return {
    name: spec.name,
    token_sha256: createHash('sha256').update(token).digest('hex'),
    role: spec.role,
    ...(spec.robots === undefined ? {} : { robots: spec.robots }),
  }
}

/**
 * Writes `file` with a fresh token for each spec (or the token given in
 * `keep`, by name, to keep a token across rewrites) and returns them.
 */
export function writeTokens(
  file: string,
  specs: readonly TokenSpec[],
  keep: Readonly<Record<string, string>> = {},
): TokensFile {
  const tokens: Record<string, string> = {}
  const entries = specs.map((spec) => {
    const token = keep[spec.name] ?? newToken()
    tokens[spec.name] = token
    return tokenEntry(spec, token)
  })
  writeFileSync(file, JSON.stringify(entries, null, 2), { mode: 0o600 })
  return { ...tokens, file }
}

/**
 * Writes `tokens.json` in `dir` with one ingest token (held to `robots`,
 * when given) and one read token: what {@link startServer}'s `access`
 * takes, so that the server's reads and `server.ingestToken` work.
 *
 * @example
 * const server = await startServer([], {}, { access: accessFile(dir) })
 * connect(server.upstreamUrl, { token: server.ingestToken })
 */
export function accessFile(
  dir: string,
  robots?: readonly string[],
): ServerAccess {
  const tokens = writeTokens(join(dir, 'tokens.json'), [
    {
      name: 'robots',
      role: 'ingest',
      ...(robots === undefined ? {} : { robots }),
    },
    { name: 'reader', role: 'read' },
  ])
  return {
    file: tokens.file,
    readToken: tokens.reader!,
    ingestToken: tokens.robots!,
  }
}

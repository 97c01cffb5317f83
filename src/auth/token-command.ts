/**
 * `fleet-telemetry token create|list`: the tokens file from the command
 * line (docs/security.md). `create` prints the new token alone on one line
 * of stdout, once: only its hash is kept.
 */
import { parseArgs } from 'node:util'
import {
  addTokenToFile,
  createToken,
  readTokensFile,
  ROLES,
  TokensError,
  type Role,
  type TokenEntry,
} from './tokens.ts'

export const TOKEN_USAGE = `usage: fleet-telemetry token create --tokens FILE --name NAME --role ${ROLES.join('|')} [--robot PATTERN]...
       fleet-telemetry token list --tokens FILE

  --tokens FILE (TELEMETRY_TOKENS)  the tokens file; create makes it (mode 0600)
  --robot PATTERN                   ingest only, repeatable: a robot name, or a
                                    prefix ending in * (no --robot: every robot)
`

/** Where a command writes. */
export interface CommandOutput {
  out(text: string): void
  err(text: string): void
}

class UsageError extends Error {}

/** Runs `token …` (`args` after the word `token`); returns the exit code. */
export function runTokenCommand(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  output: CommandOutput,
): number {
  try {
    const [command, ...rest] = args
    if (command === 'create') return create(rest, env, output)
    if (command === 'list') return list(rest, env, output)
    if (command === '--help' || command === '-h') {
      output.out(TOKEN_USAGE)
      return 0
    }
    throw new UsageError(
      command === undefined
        ? 'token needs a command: create or list'
        : `unknown token command "${command}"`,
    )
  } catch (error) {
    if (error instanceof UsageError || error instanceof TokensError) {
      output.err(`fleet-telemetry: ${error.message}\n\n${TOKEN_USAGE}`)
      return 2
    }
    // parseArgs's own errors: an unknown or malformed option.
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      output.err(
        `fleet-telemetry: ${(error as Error).message}\n\n${TOKEN_USAGE}`,
      )
      return 2
    }
    throw error
  }
}

function options(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    options: {
      tokens: { type: 'string' },
      name: { type: 'string' },
      role: { type: 'string' },
      robot: { type: 'string', multiple: true },
    },
    strict: true,
    allowPositionals: false,
  }).values
}

function tokensFile(
  value: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string {
  const path = value ?? env.TELEMETRY_TOKENS
  if (path === undefined || path === '') {
    throw new UsageError('--tokens FILE (or TELEMETRY_TOKENS) is required')
  }
  return path
}

function create(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  output: CommandOutput,
): number {
  const values = options(args)
  const path = tokensFile(values.tokens, env)
  const { name, role, robot } = values
  if (name === undefined || name === '') {
    throw new UsageError('--name NAME is required')
  }
  if (!(ROLES as readonly string[]).includes(role ?? '')) {
    throw new UsageError(`--role must be one of ${ROLES.join(', ')}`)
  }
  if (robot !== undefined && role !== 'ingest') {
    throw new UsageError('--robot applies to ingest tokens only')
  }
  const { token, sha256 } = createToken()
  const entry: TokenEntry = {
    name,
    token_sha256: sha256,
    role: role as Role,
    ...(robot === undefined ? {} : { robots: robot }),
  }
  addTokenToFile(path, entry)
  output.out(`${token}\n`)
  return 0
}

function list(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  output: CommandOutput,
): number {
  const values = options(args)
  if (values.name ?? values.role ?? values.robot) {
    throw new UsageError('token list takes --tokens only')
  }
  const { entries } = readTokensFile(tokensFile(values.tokens, env))
  const rows = entries.map((e) => [e.name, e.role, scope(e)])
  const width = (i: number) =>
    Math.max(
      ...[['NAME', 'ROLE'][i]!, ...rows.map((r) => r[i]!)].map((s) => s.length),
    )
  const line = (cells: string[]) =>
    `${cells[0]!.padEnd(width(0))}  ${cells[1]!.padEnd(width(1))}  ${cells[2]}`.trimEnd()
  output.out(
    [line(['NAME', 'ROLE', 'ROBOTS']), ...rows.map(line)].join('\n') + '\n',
  )
  return 0
}

/**
 * The robots a token may write: its patterns as a JSON array (names may
 * hold spaces and commas), `*` for all, `-` for none.
 */
function scope(entry: TokenEntry): string {
  if (entry.role === 'read') return '-'
  return entry.robots === undefined ? '*' : JSON.stringify(entry.robots)
}

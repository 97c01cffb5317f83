/**
 * Issue 11: `fleet-telemetry token create|list`, run as a user would, on
 * the compiled command line. The token is printed once and only its hash
 * is kept; `list` never shows hashes.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { makeTempDir, removeTempDir, runCli } from '../support/index.ts'

const dir = makeTempDir('tokens-e2e-')
after(() => removeTempDir(dir))

test('token create prints a token once, keeps only its hash in a 0600 file; token list shows names, roles and scopes, never hashes', async () => {
  const file = join(dir, 'tokens.json')
  const created = await runCli([
    'token',
    'create',
    '--tokens',
    file,
    '--name',
    'warehouse',
    '--role',
    'ingest',
    '--robot',
    'Bender',
    '--robot',
    'warehouse 7/*',
  ])
  assert.equal(created.code, 0, created.stderr)
  const lines = created.stdout.split('\n')
  assert.deepEqual(lines.slice(1), [''], 'the token alone on one line')
  const token = lines[0]!
  assert.match(token, /^[A-Za-z0-9_-]{43}$/)
  assert.equal(statSync(file).mode & 0o777, 0o600)
  const text = readFileSync(file, 'utf8')
  assert.ok(!text.includes(token), 'the file never holds the token')
  assert.deepEqual(JSON.parse(text), [
    {
      name: 'warehouse',
      token_sha256: createHash('sha256').update(token).digest('hex'),
      role: 'ingest',
      robots: ['Bender', 'warehouse 7/*'],
    },
  ])

  // The file may also come from TELEMETRY_TOKENS.
  for (const [name, role] of [
    ['grafana', 'read'],
    ['ops', 'admin'],
  ]) {
    const more = await runCli(
      ['token', 'create', '--name', name!, '--role', role!],
      { TELEMETRY_TOKENS: file },
    )
    assert.equal(more.code, 0, more.stderr)
    assert.notEqual(more.stdout.trim(), token)
  }

  const listed = await runCli(['token', 'list', '--tokens', file])
  assert.equal(listed.code, 0, listed.stderr)
  assert.equal(
    listed.stdout,
    [
      'NAME       ROLE    ROBOTS',
      'warehouse  ingest  ["Bender","warehouse 7/*"]',
      'grafana    read    -',
      'ops        admin   *',
      '',
    ].join('\n'),
  )
  assert.doesNotMatch(listed.stdout, /[0-9a-f]{64}/)
})

test('token commands refuse what they cannot do, with exit 2 and a message, and leave the file as it was', async () => {
  const file = join(dir, 'refusals.json')
  const ok = await runCli([
    'token',
    'create',
    '--tokens',
    file,
    '--name',
    'a',
    '--role',
    'read',
  ])
  assert.equal(ok.code, 0, ok.stderr)
  const before = readFileSync(file, 'utf8')
  // `token create` into this file, with the options after `--tokens FILE`.
  const create = (...options: string[]) => [
    'token',
    'create',
    '--tokens',
    file,
    ...options,
  ]
  const cases: [string[], RegExp][] = [
    [create('--name', 'a', '--role', 'read'), /token "a" appears twice/],
    [
      create('--name', 'b', '--role', 'root'),
      /--role must be one of ingest, read, admin/,
    ],
    [
      create('--name', 'b', '--role', 'read', '--robot', 'x'),
      /--robot applies to ingest tokens only/,
    ],
    [create('--role', 'read'), /--name NAME is required/],
    [
      ['token', 'create', '--name', 'b', '--role', 'read'],
      /--tokens FILE \(or TELEMETRY_TOKENS\) is required/,
    ],
    [
      create('--name', 'b', '--role', 'read', '--secret', 'x'),
      /Unknown option '--secret'/,
    ],
    [
      ['token', 'list', '--tokens', join(dir, 'missing.json')],
      /cannot read the tokens file/,
    ],
    [['token', 'revoke'], /unknown token command "revoke"/],
    [['token'], /token needs a command: create or list/],
  ]
  for (const [args, message] of cases) {
    const run = await runCli(args)
    assert.equal(run.code, 2, `${args.join(' ')}: exit ${run.code}`)
    assert.match(run.stderr, message, args.join(' '))
    assert.match(run.stderr, /usage: fleet-telemetry token create/)
    assert.equal(run.stdout, '', 'no token printed')
  }
  assert.equal(readFileSync(file, 'utf8'), before)
})

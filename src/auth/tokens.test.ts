import assert from 'node:assert/strict'
import {
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import {
  addTokenToFile,
  createToken,
  parseTokens,
  readTokensFile,
  sha256Hex,
  TokensError,
  type TokenEntry,
} from './tokens.ts'

const dir = mkdtempSync(join(tmpdir(), 'tokens-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const parse = (entries: unknown) =>
  parseTokens(JSON.stringify(entries), 'tokens.json')
const rejects = (entries: unknown, message: RegExp) =>
  assert.throws(
    () => parse(entries),
    (error) => error instanceof TokensError && message.test(error.message),
  )

describe('tokens', () => {
  const ingest = createToken()
  const reader = createToken()
  const admin = createToken()
  const table = parse([
    {
      name: 'warehouse',
      token_sha256: ingest.sha256,
      role: 'ingest',
      robots: ['Bender', 'warehouse-7/*'],
    },
    // Upper-case hex is read as the same digest.
    {
      name: 'grafana',
      token_sha256: reader.sha256.toUpperCase(),
      role: 'read',
    },
    { name: 'ops', token_sha256: admin.sha256, role: 'admin' },
  ])

  it('should make tokens of 256 random bits, stored as their SHA-256', () => {
    assert.match(ingest.token, /^[A-Za-z0-9_-]{43}$/)
    assert.notEqual(ingest.token, reader.token)
    assert.equal(ingest.sha256, sha256Hex(ingest.token))
    assert.match(ingest.sha256, /^[0-9a-f]{64}$/)
  })

  it('should know a token by its hash, and nothing else', () => {
    assert.equal(table.identify(ingest.token)?.name, 'warehouse')
    assert.equal(table.identify(reader.token)?.role, 'read')
    assert.equal(table.identify(admin.token)?.role, 'admin')
    assert.equal(table.identify(''), undefined)
    assert.equal(table.identify(ingest.sha256), undefined)
    assert.equal(table.identify(ingest.token.toUpperCase()), undefined)
    assert.equal(table.identify(`${ingest.token} `), undefined)
  })

  it('should let an ingest token write only the robots of its scope, names case-sensitive', () => {
    const who = table.identify(ingest.token)!
    assert.equal(who.mayWrite('Bender'), true)
    assert.equal(who.mayWrite('bender'), false)
    assert.equal(who.mayWrite('Bender2'), false)
    assert.equal(who.mayWrite('warehouse-7/'), true)
    assert.equal(who.mayWrite('warehouse-7/arm 3'), true)
    assert.equal(who.mayWrite('warehouse-7'), false)
    assert.equal(who.mayWrite('warehouse-70/arm'), false)
    assert.equal(table.identify(admin.token)!.mayWrite('anything'), true)
    assert.equal(table.identify(reader.token)!.mayWrite('Bender'), false)
    const unscoped = parse([
      { name: 'all', token_sha256: ingest.sha256, role: 'ingest' },
    ])
    assert.equal(unscoped.identify(ingest.token)!.mayWrite('any robot'), true)
  })

  it('should refuse a file that does not say exactly what it means, naming the entry and the field', () => {
    const ok = { name: 'a', token_sha256: ingest.sha256, role: 'read' }
    assert.throws(
      () => parseTokens('[{', 'tokens.json'),
      /tokens.json is not JSON/,
    )
    rejects({ tokens: [] }, /must hold a JSON array/)
    rejects([ok, 'b'], /entry 2 is not an object/)
    rejects([{ ...ok, token: 'x' }], /entry 1 has unknown field "token"/)
    rejects([{ ...ok, name: '' }], /entry 1: "name" must be a non-empty string/)
    rejects(
      [ok, { ...ok, token_sha256: reader.sha256 }],
      /token "a" appears twice/,
    )
    rejects(
      [{ ...ok, token_sha256: 'abc' }],
      /"token_sha256" must be 64 hexadecimal/,
    )
    rejects(
      [ok, { ...ok, name: 'b', token_sha256: ingest.sha256.toUpperCase() }],
      /token "b" has the hash of an earlier token/,
    )
    rejects(
      [{ ...ok, role: 'root' }],
      /"role" must be one of ingest, read, admin/,
    )
    rejects(
      [{ ...ok, robots: ['x'] }],
      /"robots" applies to ingest tokens only/,
    )
    rejects(
      [{ ...ok, role: 'ingest', robots: 'x' }],
      /"robots" must be an array/,
    )
    rejects(
      [{ ...ok, role: 'ingest', robots: [''] }],
      /"robots" must be an array/,
    )
    assert.equal(parse([]).entries.length, 0)
  })

  it('should add tokens to a file it creates with mode 0600, and keep the file whole', () => {
    const path = join(dir, 'tokens.json')
    const first: TokenEntry = {
      name: 'a',
      token_sha256: ingest.sha256,
      role: 'admin',
    }
    addTokenToFile(path, first)
    assert.equal(statSync(path).mode & 0o777, 0o600)
    addTokenToFile(path, {
      name: 'b',
      token_sha256: reader.sha256,
      role: 'ingest',
      robots: ['r*'],
    })
    const table = readTokensFile(path)
    assert.deepEqual(
      table.entries.map((e) => e.name),
      ['a', 'b'],
    )
    assert.equal(table.identify(reader.token)!.mayWrite('robot'), true)
    assert.equal(statSync(path).mode & 0o777, 0o600)
    // A clash leaves the file as it was.
    const text = readFileSync(path, 'utf8')
    assert.throws(() => addTokenToFile(path, first), /token "a" appears twice/)
    assert.equal(readFileSync(path, 'utf8'), text)
  })

  it('should say which file it cannot read or parse', () => {
    assert.throws(
      () => readTokensFile(join(dir, 'missing.json')),
      /cannot read the tokens file .*missing.json/,
    )
    const broken = join(dir, 'broken.json')
    writeFileSync(broken, '{}')
    assert.throws(
      () => readTokensFile(broken),
      /broken.json must hold a JSON array/,
    )
    assert.throws(
      () =>
        addTokenToFile(broken, {
          name: 'x',
          token_sha256: admin.sha256,
          role: 'read',
        }),
      TokensError,
    )
  })
})

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { formatPostgresUrl, parsePostgresUrl } from './postgres-url.ts'

describe('parsePostgresUrl', () => {
  it('should read every host of a formation, and the rest from the first', () => {
    const address = parsePostgresUrl(
      'postgres://app:p%40ss@db1:6001,db2:6002,[::1]:6003/fleet?target_session_attrs=read-write&schema=s',
    )!
    assert.deepEqual(address.hosts, ['db1:6001', 'db2:6002', '[::1]:6003'])
    assert.equal(address.url.username, 'app')
    assert.equal(decodeURIComponent(address.url.password), 'p@ss')
    assert.equal(address.url.pathname, '/fleet')
    assert.equal(
      address.url.searchParams.get('target_session_attrs'),
      'read-write',
    )
  })

  it('should write an address back as it was, with a parameter changed', () => {
    for (const text of [
      'postgres://postgres@127.0.0.1:6001,127.0.0.1:6002/postgres?target_session_attrs=read-write',
      'postgresql://h/db',
      'postgres://u:p@h:1/db?a=1',
    ]) {
      assert.equal(formatPostgresUrl(parsePostgresUrl(text)!), text)
    }
    const address = parsePostgresUrl('postgres://u@a:1,b:2/db?schema=x&y=1')!
    address.url.searchParams.delete('schema')
    assert.equal(formatPostgresUrl(address), 'postgres://u@a:1,b:2/db?y=1')
  })

  it('should refuse an empty host, a host URL refuses, and other schemes', () => {
    for (const text of [
      'postgres://u@a:1,/db',
      'postgres://u@,a:1/db',
      'postgres://u@a:1,[oops/db',
      'mysql://u@a/db',
    ]) {
      assert.equal(parsePostgresUrl(text), undefined, text)
    }
  })
})

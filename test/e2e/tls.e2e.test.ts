/**
 * TLS on the server's own port (docs/security.md): https and wss with a
 * certificate the test makes, the certificate re-read on SIGHUP while a
 * connection streams, and files that cannot be used refused at the start.
 */
import assert from 'node:assert/strict'
import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import {
  IngestClient,
  httpsRequest,
  makeCertificate,
  makeTempDir,
  removeTempDir,
  runCli,
  startServer,
  waitFor,
  writeTokens,
} from '../support/index.ts'

describe('TLS', () => {
  test('serves https and wss on one port, and re-reads the certificate on SIGHUP', async (t) => {
    const dir = makeTempDir('telemetry-tls-')
    t.after(() => removeTempDir(dir))
    const first = await makeCertificate(dir, 'first')
    const second = await makeCertificate(dir, 'second')
    // The server reads these two paths; the test puts either pair there.
    const certFile = join(dir, 'server.crt')
    const keyFile = join(dir, 'server.key')
    copyFileSync(first.certFile, certFile)
    copyFileSync(first.keyFile, keyFile)
    const tokens = writeTokens(join(dir, 'tokens.json'), [
      { name: 'ops', role: 'admin' },
    ])
    const server = await startServer([
      '--tls-cert',
      certFile,
      '--tls-key',
      keyFile,
      '--tokens',
      tokens.file,
    ])
    t.after(() => server.dispose())
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    assert.match(server.wsUrl, /^wss:\/\//)

    const health = await httpsRequest(`${server.url}/healthz`, {
      ca: first.cert,
    })
    assert.equal(health.status, 200)
    assert.equal(health.fingerprint, first.fingerprint)
    const client = await IngestClient.connect(server.wsUrl, {
      token: tokens.ops,
      ca: first.cert,
    })
    assert.equal(await client.send('1,1,1,Tessa'), 'OK')
    const robots = await httpsRequest(`${server.url}/api/robots`, {
      ca: first.cert,
      token: tokens.ops,
    })
    assert.equal(robots.status, 200)
    assert.deepEqual(
      (JSON.parse(robots.text) as { name: string }[]).map((r) => r.name),
      ['Tessa'],
    )

    // A new certificate, then SIGHUP: new connections get it; the open
    // connection goes on.
    copyFileSync(second.certFile, certFile)
    copyFileSync(second.keyFile, keyFile)
    server.kill('SIGHUP')
    await waitFor(
      async () =>
        (await httpsRequest(`${server.url}/healthz`, { ca: second.cert })
          .then((r) => r.fingerprint === second.fingerprint)
          .catch(() => false)) || undefined,
      'the new certificate is served',
    )
    assert.equal(await client.send('2,2,2,Tessa'), 'OK')
    const wss = await IngestClient.connect(server.wsUrl, {
      token: tokens.ops,
      ca: second.cert,
    })
    assert.equal(await wss.send('3,3,3,Tessa'), 'OK')

    // A broken certificate on SIGHUP is logged; the last good one stays.
    writeFileSync(certFile, 'not a certificate')
    server.kill('SIGHUP')
    await waitFor(
      () =>
        server
          .log()
          .some((line) =>
            String(line.msg).startsWith('the TLS certificate cannot be used'),
          ),
      'the broken certificate is logged',
    )
    const still = await httpsRequest(`${server.url}/healthz`, {
      ca: second.cert,
    })
    assert.equal(still.fingerprint, second.fingerprint)
    await client.close()
    await wss.close()
  })

  test('exits 2 when the certificate or key cannot be used', async (t) => {
    const dir = makeTempDir('telemetry-tls-')
    t.after(() => removeTempDir(dir))
    const a = await makeCertificate(dir, 'a')
    const b = await makeCertificate(dir, 'b')
    const garbage = join(dir, 'garbage.pem')
    writeFileSync(garbage, 'not PEM')
    const store = `sqlite:${join(dir, 't.db')}`
    for (const [cert, key, message] of [
      [join(dir, 'missing.crt'), a.keyFile, /cannot read --tls-cert/],
      [garbage, a.keyFile, /cannot be used/],
      // A key that is not the certificate's.
      [a.certFile, b.keyFile, /cannot be used/],
    ] as const) {
      const run = await runCli([
        '--port',
        '0',
        '--store',
        store,
        '--tls-cert',
        cert,
        '--tls-key',
        key,
      ])
      assert.equal(run.code, 2, `${cert} ${key}: ${run.stderr}`)
      assert.match(run.stderr, message)
      assert.doesNotMatch(run.stdout, /listening/)
    }
  })
})

/**
 * TLS for the tests: a self-signed certificate for 127.0.0.1 made on the
 * spot (`selfsigned`, no openssl needed), and HTTPS requests that trust it
 * and report which certificate the server presented.
 *
 * @example
 * const pair = await makeCertificate(dir, 'a')
 * const server = await startServer(['--tls-cert', pair.certFile, '--tls-key', pair.keyFile])
 * const response = await httpsRequest(server.url + '/healthz', { ca: pair.cert })
 */
import { writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { generate } from 'selfsigned'
import { readResponse, type TextResponse } from './http-api.ts'
import { SAFETY_TIMEOUT_MS } from './wait.ts'

/** A certificate and its key, as PEM text and as files. */
export interface Certificate {
  readonly cert: string
  readonly key: string
  readonly certFile: string
  readonly keyFile: string
  /** SHA-256 fingerprint, `AA:BB:…`, as Node reports a peer's. */
  readonly fingerprint: string
}

/**
 * Makes a self-signed certificate for `127.0.0.1` and `localhost`, written
 * to `<dir>/<name>.crt` and `<dir>/<name>.key`.
 */
export async function makeCertificate(
  dir: string,
  name: string,
): Promise<Certificate> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  })
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  writeFileSync(certFile, pems.cert)
  writeFileSync(keyFile, pems.private, { mode: 0o600 })
  const { X509Certificate } = await import('node:crypto')
  return {
    cert: pems.cert,
    key: pems.private,
    certFile,
    keyFile,
    fingerprint: new X509Certificate(pems.cert).fingerprint256,
  }
}

/** An HTTPS response, and the fingerprint of the certificate presented. */
export interface HttpsResponse extends TextResponse {
  readonly fingerprint: string
}

/** A GET over HTTPS on a fresh connection, trusting only `ca`. */
export function httpsRequest(
  url: string,
  options: { readonly ca: string; readonly token?: string },
): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: options.ca,
        agent: false,
        headers:
          options.token === undefined
            ? {}
            : { authorization: `Bearer ${options.token}` },
      },
      (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate()
          .fingerprint256
        readResponse(res).then(
          (response) => resolve({ ...response, fingerprint }),
          reject,
        )
      },
    )
    req.setTimeout(SAFETY_TIMEOUT_MS, () =>
      req.destroy(new Error(`${url}: no answer in ${SAFETY_TIMEOUT_MS} ms`)),
    )
    req.on('error', reject)
    req.end()
  })
}

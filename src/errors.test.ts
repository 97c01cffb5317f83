import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ERROR_CATALOG,
  TelemetryError,
  errorBody,
  rawHttpError,
} from './errors.ts'

describe('errors', () => {
  it('should render a known error as the fastify-shaped body', () => {
    const error = new TelemetryError('ROBOT_NOT_FOUND', {
      message: 'no Bender',
    })
    assert.deepStrictEqual(errorBody(error), {
      statusCode: 404,
      code: 'ROBOT_NOT_FOUND',
      error: 'Not Found',
      message: 'no Bender',
    })
    assert.equal(error.wireCode, 'robot_not_found')
  })

  it('should render anything else as INTERNAL without detail', () => {
    assert.deepStrictEqual(errorBody(new Error('SQLITE_CORRUPT: at line 3')), {
      statusCode: 500,
      code: 'INTERNAL',
      error: 'Internal Server Error',
      message: 'internal server error',
    })
  })

  it('should give every catalog code a status and a default message', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOG)) {
      assert.match(code, /^[A-Z]+(_[A-Z]+)*$/)
      assert.ok(entry.status >= 400 && entry.status < 600, code)
      assert.equal(
        new TelemetryError(code as keyof typeof ERROR_CATALOG).message,
        entry.message,
      )
    }
  })

  it('should write a raw HTTP response with the JSON body', () => {
    const raw = rawHttpError(
      new TelemetryError('UNAVAILABLE', { message: 'bye' }),
    )
    const [head, body] = raw.split('\r\n\r\n')
    assert.match(head!, /^HTTP\/1\.1 503 Service Unavailable\r\n/)
    assert.match(
      head!,
      new RegExp(`Content-Length: ${Buffer.byteLength(body!)}\r\n`),
    )
    assert.deepStrictEqual(JSON.parse(body!), {
      statusCode: 503,
      code: 'UNAVAILABLE',
      error: 'Service Unavailable',
      message: 'bye',
    })
  })
})

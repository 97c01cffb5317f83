/**
 * The HTTP contract, end to end. The server's own OpenAPI document
 * (`GET /api/openapi.json`) must be valid OpenAPI 3.1, and every answer in
 * this file is checked against it: its status is documented for the
 * operation (or falls in the operation's `default`), its Content-Type is one
 * of the documented media types, a JSON body (each line of NDJSON) matches
 * the schema of that media type, and a `Link` header is documented and
 * matches its schema. A request the document has no operation for must be
 * answered with its Error schema. At the end, every documented status, media
 * type and error code of every operation must have been seen.
 *
 * The tables of query values say what the server answered before its routes
 * declared schemas (Fastify's coercion must change none of it); the table of
 * Accept headers says what q-values change.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv2020 } from 'ajv/dist/2020.js'
import ajvFormats from 'ajv-formats'
import {
  IngestClient,
  rawExchange,
  startServer,
  type ServerProcess,
} from '../support/index.ts'

// --- the contract: the served document, read as a validator ---

/** The parts of an OpenAPI document this test reads. */
interface Schema {
  readonly allOf?: readonly Schema[]
  readonly properties?: Readonly<Record<string, Schema>>
  readonly enum?: readonly unknown[]
}
interface Response {
  readonly headers?: Readonly<Record<string, unknown>>
  readonly content?: Readonly<Record<string, { readonly schema: Schema }>>
}
interface Operation {
  readonly parameters?: readonly {
    readonly name: string
    readonly in: string
  }[]
  readonly responses: Readonly<Record<string, Response>>
}
interface Document {
  readonly openapi: string
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>
}

/** A JSON object of an answer. */
type Body = Record<string, unknown>

/** An answer, and the request it answers. */
interface Answer {
  readonly method: string
  /** The path and query as sent, percent-encoded. */
  readonly path: string
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

/** Headers the API sets itself, which the document must describe. */
const API_HEADERS = ['Link', 'X-Total-Count']

/** A JSON pointer (RFC 6901) to the document node at `tokens`. */
function pointer(tokens: readonly string[]): string {
  return tokens
    .map((t) => `/${t.replaceAll('~', '~0').replaceAll('/', '~1')}`)
    .join('')
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}

// ajv-formats is CommonJS: its default export is the module object.
const addFormats = ajvFormats as unknown as (typeof ajvFormats)['default']

class Contract {
  readonly document: Document
  readonly #ajv: Ajv2020
  readonly #templates: { template: string; pattern: RegExp }[]
  /** `METHOD /template STATUS media-or-code` of every answer checked. */
  readonly seen = new Set<string>()

  constructor(document: Document) {
    this.document = document
    // OpenAPI 3.1 schemas are JSON Schema 2020-12; `strict` refuses a
    // keyword it does not know rather than ignoring it.
    this.#ajv = new Ajv2020({ strict: true, allErrors: true })
    addFormats(this.#ajv)
    this.#ajv.addVocabulary([
      'openapi',
      'info',
      'tags',
      'security',
      'paths',
      'components',
    ])
    this.#ajv.addSchema(document, 'openapi.json')
    this.#templates = Object.keys(document.paths).map((template) => ({
      template,
      pattern: new RegExp(
        `^${template.replace(/\{(\w+)\}/g, '(?<$1>[^/]*)')}$`,
      ),
    }))
  }

  /** Validates `value` against the schema at `tokens` of the document. */
  validate(what: string, tokens: readonly string[], value: unknown): void {
    const ref = `openapi.json#${pointer(tokens)}`
    const validate = this.#ajv.getSchema(ref)
    assert.ok(validate !== undefined, `${what}: no schema at ${ref}`)
    assert.ok(
      validate(value),
      `${what}: ${this.#ajv.errorsText(validate.errors)} at ${ref}; value ${JSON.stringify(value)?.slice(0, 300)}`,
    )
  }

  /** The operation of a request, with the tokens of its node. */
  #operation(method: string, url: URL, ok: boolean) {
    for (const { template, pattern } of this.#templates) {
      const match = pattern.exec(url.pathname)
      const operation = this.document.paths[template]![method]
      if (match === null || operation === undefined) continue
      const tokens = ['paths', template, method]
      for (const [i, parameter] of (operation.parameters ?? []).entries()) {
        const at = [...tokens, 'parameters', String(i), 'schema']
        if (parameter.in === 'path') {
          const value = decodeSegment(match.groups![parameter.name]!)
          if (value === undefined) continue // broken percent-encoding
          const validate = this.#ajv.getSchema(`openapi.json#${pointer(at)}`)
          // A segment the document refuses (empty) is no operation.
          if (validate?.(value) !== true) return undefined
        } else if (parameter.in === 'query' && ok) {
          // The document never refuses a query the server accepts.
          const values = url.searchParams.getAll(parameter.name)
          assert.ok(values.length <= 1, `${url}: ${parameter.name} once`)
          if (values.length === 1) this.validate(`${url}`, at, values[0])
        }
      }
      return { template, operation, tokens }
    }
    return undefined
  }

  /** Checks an answer against the document (see the top of the file). */
  check(answer: Answer): void {
    const what = `${answer.method} ${answer.path.slice(0, 200)} → ${answer.status}`
    const method = answer.method.toLowerCase()
    const url = new URL(answer.path, 'http://host')
    const type = answer.headers.get('content-type') ?? ''
    const media = type.split(';', 1)[0]!.trim().toLowerCase()
    const found = this.#operation(method, url, answer.status < 300)
    if (found === undefined) {
      // No operation: a route-less error, with the Error schema.
      assert.equal(media, 'application/json', `${what}: content type`)
      const body = JSON.parse(answer.text) as Body
      this.validate(what, ['components', 'schemas', 'Error'], body)
      assert.equal(body.statusCode, answer.status, `${what}: statusCode`)
      return
    }
    const responses = found.operation.responses
    const status = String(answer.status)
    const key = [status, `${status[0]}XX`, 'default'].find(
      (k) => responses[k] !== undefined,
    )
    assert.ok(key !== undefined, `${what}: status not documented`)
    const response = responses[key]!
    const tokens = [...found.tokens, 'responses', key]

    const documented = Object.keys(response.headers ?? {})
    for (const name of API_HEADERS) {
      const value = answer.headers.get(name)
      if (value === null) continue
      assert.ok(documented.includes(name), `${what}: ${name} not documented`)
      this.validate(
        `${what}: ${name}`,
        [...tokens, 'headers', name, 'schema'],
        value,
      )
    }

    if (response.content === undefined) {
      // A response documented without content (204) has no body.
      assert.equal(answer.text, '', `${what}: no body`)
      assert.equal(type, '', `${what}: no content type`)
      this.seen.add(`${method.toUpperCase()} ${found.template} ${key} -`)
      return
    }
    assert.ok(
      response.content?.[media] !== undefined,
      `${what}: content type ${type} not documented (${Object.keys(response.content ?? {}).join(', ')})`,
    )
    const schema = [...tokens, 'content', media, 'schema']
    let code = media
    if (media === 'application/json') {
      const body = JSON.parse(answer.text) as Body
      this.validate(what, schema, body)
      if (answer.status >= 400) code = String(body.code)
    } else if (media === 'application/x-ndjson') {
      // A sequential media type: the schema is that of each line.
      assert.ok(answer.text === '' || answer.text.endsWith('\n'), what)
      for (const line of answer.text.split('\n').slice(0, -1)) {
        this.validate(what, schema, JSON.parse(line))
      }
    } else {
      this.validate(what, schema, answer.text)
    }
    this.seen.add(`${method.toUpperCase()} ${found.template} ${key} ${code}`)
  }

  /**
   * Every `METHOD /template STATUS x` the document promises, apart from
   * `default`: x is each error code of an error response, else each media
   * type, or `-` for a response without content.
   */
  promised(): string[] {
    const all: string[] = []
    for (const [template, item] of Object.entries(this.document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        for (const [key, response] of Object.entries(operation.responses)) {
          if (key === 'default') continue
          if (response.content === undefined) {
            all.push(`${method.toUpperCase()} ${template} ${key} -`)
          }
          for (const [media, content] of Object.entries(
            response.content ?? {},
          )) {
            const parts = content.schema.allOf ?? [content.schema]
            const codes = parts.flatMap(
              (part) => part.properties?.code?.enum?.map(String) ?? [],
            )
            for (const x of codes.length > 0 ? codes : [media]) {
              all.push(`${method.toUpperCase()} ${template} ${key} ${x}`)
            }
          }
        }
      }
    }
    return all
  }
}

// --- the server under test ---

/** Robot `Bender`: ten events `i,0,i`, so its odometer is 9. */
const BENDER = Array.from({ length: 10 }, (_, i) => `${i},0,${i},Bender`)
/** Nine more robots, `r1` to `r9`: ten in all. */
const OTHERS = Array.from({ length: 9 }, (_, i) => `0,0,0,r${i + 1}`)
/** A robot whose distance overflows to infinity: JSON writes it `null`. */
const FAR = ['1.7e308,0,0,Far', '-1.7e308,0,1,Far']

const MAX = 9007199254740991

describe('the OpenAPI document and the answers it describes', () => {
  let server: ServerProcess
  let contract: Contract

  /** `fetch` of a path; the answer is checked against the document. */
  async function call(path: string, init: RequestInit = {}): Promise<Answer> {
    const response = await fetch(server.url + path, init)
    const answer: Answer = {
      method: init.method ?? 'GET',
      path,
      status: response.status,
      headers: response.headers,
      text: await response.text(),
    }
    contract.check(answer)
    return answer
  }

  /** A GET without a Host header (HTTP/1.1 requires one): 400 BAD_REQUEST. */
  async function withoutHost(path: string): Promise<Answer> {
    const response = await rawExchange(
      server,
      `GET ${path} HTTP/1.1\r\nConnection: close\r\n\r\n`,
    )
    const answer: Answer = { method: 'GET', path, ...response }
    contract.check(answer)
    return answer
  }

  /** The body of an error answer, checked whole. */
  function assertError(
    answer: Answer,
    status: number,
    code: string,
    message?: string,
  ): void {
    const body = JSON.parse(answer.text) as Record<string, unknown>
    assert.equal(answer.status, status, `${answer.path}: ${answer.text}`)
    assert.equal(body.code, code, answer.path)
    if (message !== undefined) assert.equal(body.message, message, answer.path)
  }

  before(async () => {
    server = await startServer(['--max-live-streams', '1'])
    const client = await IngestClient.connect(server.wsUrl)
    const lines = [...BENDER, ...OTHERS, ...FAR]
    assert.equal(
      await client.send(lines.join('\n')),
      lines.map(() => 'OK').join('\n'),
    )
    await client.close()
    const response = await fetch(`${server.url}/api/openapi.json`)
    contract = new Contract((await response.json()) as Document)
  })
  after(async () => server?.dispose())

  test('serves a valid OpenAPI 3.1 document whose paths are the routes, in the order of docs/api.md', async () => {
    const answer = await call('/api/openapi.json')
    assert.equal(answer.status, 200)
    const document = JSON.parse(answer.text) as Document & Body
    assert.match(document.openapi, /^3\.1\.\d+$/)
    const result = await new Validator().validate(document)
    assert.deepEqual(result.errors, undefined)
    assert.equal(result.valid, true)
    assert.deepEqual(Object.keys(document.paths), [
      '/healthz',
      '/metrics',
      '/api/openapi.json',
      '/api/robots',
      '/api/robots/{robot}',
      '/api/robots/{robot}/events',
      '/api/robots/{robot}/odometer',
      '/api/robots/{robot}/events.mcap',
      '/api/export.mcap',
      '/api/live',
    ])
    // Bearer tokens (docs/security.md): optional unless the server has a
    // tokens file, and never on /healthz.
    const schemes = (
      document as unknown as { components: { securitySchemes: Body } }
    ).components.securitySchemes as Record<string, Body>
    assert.deepEqual(
      { type: schemes.bearer?.type, scheme: schemes.bearer?.scheme },
      { type: 'http', scheme: 'bearer' },
    )
    assert.deepEqual(document.security, [{ bearer: [] }, {}])
    assert.deepEqual(
      (document.paths['/healthz']!.get as unknown as Body).security,
      [],
    )
  })

  test('answers every route as the document says', async () => {
    assert.deepEqual(JSON.parse((await call('/healthz')).text), {
      status: 'ok',
      store: { writable: true },
    })
    assert.match((await call('/metrics')).text, /^telemetry_replies_total/m)
    const all = await call('/api/robots')
    const robots = JSON.parse(all.text) as Body[]
    assert.equal(robots.length, 11)
    assert.equal(all.headers.get('x-total-count'), '11')
    const bender = JSON.parse((await call('/api/robots/Bender')).text) as Body
    assert.equal(bender.odometer, 9)
    const odometer = await call('/api/robots/Bender/odometer?start_time=2')
    assert.deepEqual(JSON.parse(odometer.text), {
      robot: 'Bender',
      odometer: 7,
      start_time: 2,
      end_time: null,
    })
    const page = await call('/api/robots/Bender/events?limit=2')
    assert.equal(
      page.headers.get('link'),
      '</api/robots/Bender/events?limit=2&after=1>; rel="next"',
    )
    const robotsPage = await call('/api/robots?limit=2')
    assert.equal(
      robotsPage.headers.get('link'),
      '</api/robots?limit=2&after=Far>; rel="next"',
    )
    assert.equal(robotsPage.headers.get('x-total-count'), '11')
  })

  test('writes MCAP files as the document says, and refuses an unknown profile', async () => {
    for (const path of [
      '/api/robots/Bender/events.mcap',
      '/api/robots/Bender/events.mcap?start_time=2&end_time=5&profile=ros2',
      '/api/robots/Nobody/events.mcap',
      '/api/export.mcap',
      '/api/export.mcap?robot=Bender&profile=json',
    ]) {
      const answer = await call(path)
      assert.equal(answer.status, 200, path)
      assert.equal(answer.headers.get('content-type'), 'application/vnd.mcap')
      assert.match(
        answer.headers.get('content-disposition') ?? '',
        /^attachment; filename="(Bender|Nobody|fleet)\.mcap"; filename\*=UTF-8''/,
      )
      assert.ok(answer.text.startsWith('\ufffdMCAP0\r\n'), path)
    }
    for (const path of [
      '/api/robots/Bender/events.mcap?profile=xml',
      '/api/export.mcap?profile=ros',
    ]) {
      assertError(
        await call(path),
        400,
        'INVALID_QUERY',
        'profile must be json or ros2',
      )
    }
    assertError(
      await call('/api/export.mcap?robot=%20x'),
      400,
      'INVALID_QUERY',
      'robot " x" is no robot name: starts or ends with white space',
    )
  })

  test('deletes a robot as the document says: 204 without a body, then 404 ROBOT_NOT_FOUND', async () => {
    const client = await IngestClient.connect(server.wsUrl)
    assert.equal(await client.send('1,1,1,Doomed 1'), 'OK')
    await client.close()
    const deleted = await call('/api/robots/Doomed%201', { method: 'DELETE' })
    assert.equal(deleted.status, 204)
    assertError(
      await call('/api/robots/Doomed%201', { method: 'DELETE' }),
      404,
      'ROBOT_NOT_FOUND',
      'robot "Doomed 1" has no stored event',
    )
    assertError(
      await call('/api/robots/%E0%A4%A', { method: 'DELETE' }),
      400,
      'INVALID_URL',
      'the URL has broken percent-encoding',
    )
    assertError(
      await call(`/api/robots/${'x'.repeat(5000)}`, { method: 'DELETE' }),
      400,
      'BAD_REQUEST',
    )
    assertError(
      await call('/api/robots/', { method: 'DELETE' }),
      404,
      'ROUTE_NOT_FOUND',
      'no route for DELETE /api/robots/',
    )
  })

  test('answers an infinite odometer as null, which the document allows', async () => {
    const far = JSON.parse((await call('/api/robots/Far')).text) as Body
    assert.equal(far.odometer, null)
    assert.deepEqual(
      JSON.parse((await call('/api/robots/Far/odometer')).text),
      {
        robot: 'Far',
        odometer: null,
        start_time: null,
        end_time: null,
      },
    )
  })

  test('writes the events as JSON, NDJSON or CSV, each a documented content type', async () => {
    const types = new Map([
      ['application/json', 'application/json; charset=utf-8'],
      ['application/x-ndjson', 'application/x-ndjson; charset=utf-8'],
      ['text/csv', 'text/csv; charset=utf-8'],
    ])
    for (const [accept, type] of types) {
      for (const query of ['', '?limit=3', '?start_time=20']) {
        const answer = await call(`/api/robots/Bender/events${query}`, {
          headers: { accept },
        })
        assert.equal(answer.status, 200)
        assert.equal(answer.headers.get('content-type'), type)
      }
    }
  })

  test('answers 404 ROUTE_NOT_FOUND for no route, an empty robot segment included', async () => {
    for (const [path, method] of [
      ['/nope', 'GET'],
      ['/api/robots/Bender/', 'GET'],
      ['/api/robots/', 'GET'],
      ['/api/robots//events', 'GET'],
      ['/api/robots//odometer', 'GET'],
      ['/api/robots//events.mcap', 'GET'],
      ['/api/robots//events?start_time=x', 'GET'],
      ['/api/robots', 'POST'],
      ['/api/robots/Bender/events', 'DELETE'],
    ] as const) {
      assertError(
        await call(path, { method }),
        404,
        'ROUTE_NOT_FOUND',
        `no route for ${method} ${path.split('?', 1)[0]}`,
      )
    }
  })

  test('answers 404 ROBOT_NOT_FOUND for a robot with no stored event', async () => {
    assertError(
      await call('/api/robots/Nobody'),
      404,
      'ROBOT_NOT_FOUND',
      'robot "Nobody" has no stored event',
    )
  })

  test('answers 400 INVALID_URL for broken percent-encoding in the path', async () => {
    for (const rest of ['', '/events', '/odometer', '/events.mcap']) {
      assertError(
        await call(`/api/robots/%E0%A4%A${rest}`),
        400,
        'INVALID_URL',
        'the URL has broken percent-encoding',
      )
    }
  })

  test('answers 400 BAD_REQUEST to a request without Host or with a path segment over 4096 characters', async () => {
    for (const path of [
      '/healthz',
      '/metrics',
      '/api/openapi.json',
      '/api/robots',
      '/api/robots/Bender',
      '/api/robots/Bender/events',
      '/api/robots/Bender/odometer',
      '/api/robots/Bender/events.mcap',
      '/api/export.mcap',
      '/nope',
    ]) {
      assertError(
        await withoutHost(path),
        400,
        'BAD_REQUEST',
        'an HTTP/1.1 request needs a Host header',
      )
    }
    assertError(
      await call(`/api/robots/${'x'.repeat(5000)}`),
      400,
      'BAD_REQUEST',
    )
    assertError(
      await call('/api/robots', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{',
      }),
      400,
      'BAD_REQUEST',
    )
  })

  test('answers 431 HEADERS_TOO_LARGE for a URL over 16 KiB', async () => {
    assertError(
      await call(`/api/robots/${'a'.repeat(17 * 1024)}`),
      431,
      'HEADERS_TOO_LARGE',
    )
  })

  // --- query values: the same answers as before the schemas ---

  /** `null`: absent; a number: the value read; a string: the 400 message. */
  type Expected = number | null | string
  const nonNegative = (name: string) => `${name} must be a non-negative integer`
  const atMost = (name: string) => `${name} must be at most ${MAX}`
  const TIMESTAMPS: [string, (name: string) => Expected][] = [
    ['', () => null],
    ['0', () => 0],
    ['7', () => 7],
    ['007', () => 7],
    ['00000000000000000000007', () => 7],
    [String(MAX), () => MAX],
    ['9007199254740992', atMost],
    ['99999999999999999999', atMost],
    ['1e3', nonNegative],
    ['-1', nonNegative],
    ['%2B1', nonNegative],
    ['1.0', nonNegative],
    ['1.5', nonNegative],
    ['%201', nonNegative],
    ['1%20', nonNegative],
    ['+1', nonNegative], // `+` is a space in a query
    ['0x10', nonNegative],
    ['abc', nonNegative],
    ['Infinity', nonNegative],
    ['NaN', nonNegative],
    ['true', nonNegative],
    ['null', nonNegative],
    ['%EF%BC%91', nonNegative], // a fullwidth 1
    ['%D9%A1', nonNegative], // an Arabic-Indic 1
  ]

  test('reads start_time and end_time as before: an empty value is open, 1e3, -1, 1.0 and " 1" are refused', async () => {
    for (const name of ['start_time', 'end_time']) {
      for (const [value, expect] of TIMESTAMPS) {
        const expected = expect(name)
        const path = `/api/robots/Bender/odometer?${name}=${value}`
        const answer = await call(path)
        if (typeof expected === 'string') {
          assertError(answer, 400, 'INVALID_QUERY', expected)
          const events = await call(
            `/api/robots/Bender/events?${name}=${value}`,
          )
          assertError(events, 400, 'INVALID_QUERY', expected)
          continue
        }
        assert.equal(answer.status, 200, path)
        assert.equal((JSON.parse(answer.text) as Body)[name], expected, path)
      }
    }
  })

  test('reads after of the events as before', async () => {
    for (const [value, expect] of TIMESTAMPS) {
      const expected = expect('after')
      const answer = await call(`/api/robots/Bender/events?after=${value}`)
      if (typeof expected === 'string') {
        assertError(answer, 400, 'INVALID_QUERY', expected)
        continue
      }
      const events = JSON.parse(answer.text) as { timestamp: number }[]
      const from = expected === null ? 0 : expected + 1
      assert.deepEqual(
        events.map((e) => e.timestamp),
        [...Array(10).keys()].filter((t) => t >= from),
        value,
      )
    }
  })

  test('reads limit as before: 1 to the maximum, up to nine digits, 007 is 7', async () => {
    const limits: [string, number | null | 'refused'][] = [
      ['', null],
      ['1', 1],
      ['7', 7],
      ['007', 7],
      ['000000001', 1],
      ['0000000001', 'refused'],
      ['0', 'refused'],
      ['00', 'refused'],
      ['-1', 'refused'],
      ['%2B1', 'refused'],
      ['%201', 'refused'],
      ['1.0', 'refused'],
      ['1e3', 'refused'],
      ['abc', 'refused'],
      ['10000', 10_000],
      ['10001', 10_001],
      ['100000', 100_000],
      ['100001', 100_001],
    ]
    for (const [route, max, total] of [
      ['/api/robots', 10_000, 11],
      ['/api/robots/Bender/events', 100_000, 10],
    ] as const) {
      for (const [value, expected] of limits) {
        const path = `${route}?limit=${value}`
        const answer = await call(path)
        if (expected === 'refused' || (expected ?? 0) > max) {
          assertError(
            answer,
            400,
            'INVALID_QUERY',
            `limit must be an integer from 1 to ${max}`,
          )
          continue
        }
        assert.equal(answer.status, 200, path)
        assert.equal(
          (JSON.parse(answer.text) as unknown[]).length,
          Math.min(expected ?? total, total),
          path,
        )
      }
    }
  })

  test('refuses a parameter given twice, also empty, and ignores unknown ones', async () => {
    for (const [path, name] of [
      ['/api/robots?limit=1&limit=2', 'limit'],
      ['/api/robots?limit=&limit=', 'limit'],
      ['/api/robots?after=a&after=b', 'after'],
      ['/api/robots/Bender/events?start_time=1&start_time=1', 'start_time'],
      ['/api/robots/Bender/events?end_time=&end_time=', 'end_time'],
      ['/api/robots/Bender/events?after=1&after=2', 'after'],
      ['/api/robots/Bender/events?limit=1&limit=2', 'limit'],
      ['/api/robots/Bender/odometer?end_time=1&end_time=2', 'end_time'],
    ]) {
      assertError(
        await call(path!),
        400,
        'INVALID_QUERY',
        `${name} must be given once`,
      )
    }
    // The parsers read in order: the first invalid parameter is named.
    assertError(
      await call('/api/robots/Bender/events?limit=0&end_time=x&start_time=y'),
      400,
      'INVALID_QUERY',
      nonNegative('start_time'),
    )
    for (const path of [
      '/api/robots/Bender/events?start_time[]=1',
      '/api/robots/Bender/events?START_TIME=x',
      '/api/robots/Bender/odometer?__proto__=1',
      '/api/robots?constructor=x&limit[a]=1',
      '/api/robots/Bender/events?start_time',
    ]) {
      assert.equal((await call(path)).status, 200, path)
    }
  })

  // --- content negotiation ---

  test('picks the events format by the q-values of Accept, JSON when none is acceptable', async () => {
    const JSON_TYPE = 'application/json; charset=utf-8'
    const NDJSON = 'application/x-ndjson; charset=utf-8'
    const CSV = 'text/csv; charset=utf-8'
    const cases: [string | undefined, string][] = [
      [undefined, JSON_TYPE],
      ['', JSON_TYPE],
      ['*/*', JSON_TYPE],
      ['application/json', JSON_TYPE],
      ['application/x-ndjson', NDJSON],
      ['APPLICATION/X-NDJSON', NDJSON],
      ['text/csv', CSV],
      ['text/csv; charset=utf-8', CSV],
      // q=0 excludes (CSV before q-values were weighed)
      ['text/csv;q=0, application/json', JSON_TYPE],
      // the highest q wins (CSV before)
      ['text/html, text/csv;q=0.9, application/json', JSON_TYPE],
      // (JSON before)
      ['application/json;q=0.5, text/csv', CSV],
      // equal q: the first listed
      ['text/csv, application/json', CSV],
      ['application/x-ndjson;q=0.9, text/csv;q=0.9', NDJSON],
      // wildcards (JSON before for text/*)
      ['text/*', CSV],
      ['application/*', JSON_TYPE],
      ['text/html, */*;q=0.1', JSON_TYPE],
      ['*/*, application/json;q=0', NDJSON],
      // the most specific range gives the q (CSV before)
      ['*/*;q=0.5, text/csv;q=0.1', JSON_TYPE],
      // nothing acceptable: JSON, not 406 (CSV before for the first two)
      ['text/csv;q=0', JSON_TYPE],
      ['text/csv;q=abc', JSON_TYPE],
      ['text/csv; charset=latin1', JSON_TYPE],
      ['application/json;q=0', JSON_TYPE],
      ['text/html', JSON_TYPE],
      ['constructor', JSON_TYPE],
      [',,,', JSON_TYPE],
    ]
    for (const [accept, type] of cases) {
      const answer = await call(
        '/api/robots/Bender/events?limit=2',
        accept === undefined ? {} : { headers: { accept } },
      )
      assert.equal(answer.status, 200)
      assert.equal(answer.headers.get('content-type'), type, `Accept ${accept}`)
    }
  })

  test('streams the live feed as the document says, and refuses what it does not serve', async () => {
    // The stream never ends by itself: read until its start is over.
    const aborted = new AbortController()
    const response = await fetch(`${server.url}/api/live?robot=Bender`, {
      signal: aborted.signal,
    })
    const reader = response
      .body!.pipeThrough(new TextDecoderStream())
      .getReader()
    let text = ''
    while (!text.includes('event: live\n')) {
      const { value, done } = await reader.read()
      assert.equal(done, false, 'the stream stays open')
      text += value
    }
    contract.check({
      method: 'GET',
      path: '/api/live?robot=Bender',
      status: response.status,
      headers: response.headers,
      text,
    })
    assert.match(text, /^retry: 1000\n\nevent: snapshot\nid: 9\n/)
    // The server allows one stream (--max-live-streams 1): this one.
    assertError(await call('/api/live'), 503, 'TOO_MANY_STREAMS')
    aborted.abort()
    await reader.read().catch(() => {})
    assertError(
      await call('/api/live?robot=%20x'),
      400,
      'INVALID_QUERY',
      'robot " x" is no robot name: starts or ends with white space',
    )
    assertError(
      await call('/api/live?robot=a&robot=b', {
        headers: { 'last-event-id': '1' },
      }),
      400,
      'BAD_REQUEST',
      'Last-Event-ID needs a stream of exactly one robot',
    )
  })

  test('has seen every documented status, media type and error code', () => {
    const missing = contract.promised().filter((x) => !contract.seen.has(x))
    assert.deepEqual(missing, [])
  })
})

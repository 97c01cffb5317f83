import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { chooseEventFormat, renderEvents } from './formats.ts'
import type { EventPage } from '../store/store.ts'

async function* pages(...list: EventPage[]) {
  yield* list
}

async function render(
  accept: string | undefined,
  robot: string,
  ...list: EventPage[]
) {
  const format = chooseEventFormat(accept, robot)
  const chunks: Buffer[] = []
  for await (const chunk of renderEvents(pages(...list), format)) {
    chunks.push(Buffer.from(chunk))
  }
  return { type: format.contentType, text: Buffer.concat(chunks).toString() }
}

const page = (...events: [number, number, number][]): EventPage => ({
  ts: events.map((e) => e[0]),
  x: events.map((e) => e[1]),
  y: events.map((e) => e[2]),
})
const p1 = page([1, 0.5, -2])
const p2 = page([2, 1e21, 0], [3, -2.2250738585072014e-308, 123456789.125])

describe('event formats', () => {
  it('should write a JSON array across pages that JSON.parse reads back', async () => {
    const { type, text } = await render(undefined, 'a"b 😀', p1, p2)
    assert.equal(type, 'application/json; charset=utf-8')
    assert.deepStrictEqual(JSON.parse(text), [
      { robot: 'a"b 😀', x: 0.5, y: -2, timestamp: 1 },
      { robot: 'a"b 😀', x: 1e21, y: 0, timestamp: 2 },
      {
        robot: 'a"b 😀',
        x: -2.2250738585072014e-308,
        y: 123456789.125,
        timestamp: 3,
      },
    ])
    assert.equal((await render('application/json', 'r')).text, '[]')
  })

  it('should write one JSON object per line as NDJSON', async () => {
    const { type, text } = await render('application/x-ndjson', 'r', p1, p2)
    assert.equal(type, 'application/x-ndjson; charset=utf-8')
    assert.equal(
      text,
      '{"robot":"r","x":0.5,"y":-2,"timestamp":1}\n' +
        '{"robot":"r","x":1e+21,"y":0,"timestamp":2}\n' +
        '{"robot":"r","x":-2.2250738585072014e-308,"y":123456789.125,"timestamp":3}\n',
    )
    assert.equal((await render('application/x-ndjson', 'r')).text, '')
  })

  it('should write CSV with a header and quote names that need it', async () => {
    const { type, text } = await render('text/csv', 'a,"b"', p1)
    assert.equal(type, 'text/csv; charset=utf-8')
    assert.equal(text, 'robot,x,y,timestamp\r\n"a,""b""",0.5,-2,1\r\n')
  })

  it('should pick the type of the Accept header with the highest q-value, JSON when none is acceptable', () => {
    const cases: [string | undefined, string][] = [
      [undefined, 'application/json'],
      ['*/*', 'application/json'],
      ['text/csv', 'text/csv'],
      ['APPLICATION/X-NDJSON', 'application/x-ndjson'],
      ['text/csv, application/json', 'text/csv'],
      ['text/html, text/csv;q=0.9, application/json', 'application/json'],
      ['text/csv;q=0, application/json', 'application/json'],
      ['application/json;q=0.5, text/csv', 'text/csv'],
      ['text/*', 'text/csv'],
      ['*/*;q=0.5, text/csv;q=0.1', 'application/json'],
      ['application/*;q=0.5, application/json;q=0.1', 'application/x-ndjson'],
      ['*/*, application/json;q=0', 'application/x-ndjson'],
      ['text/csv;charset=utf-8', 'text/csv'],
      ['text/csv;q=0', 'application/json'],
      ['text/csv;charset=latin1', 'application/json'],
      ['text/csv;header=present', 'text/csv'],
      ['text/csv; charset=utf-8; header=present', 'text/csv'],
      ['text/csv;header=absent', 'application/json'],
      ['text/html', 'application/json'],
      ['constructor', 'application/json'],
      ['__proto__', 'application/json'],
      ['toString', 'application/json'],
      ['hasOwnProperty', 'application/json'],
    ]
    for (const [accept, type] of cases) {
      assert.equal(
        chooseEventFormat(accept, 'r').contentType,
        `${type}; charset=utf-8`,
        accept,
      )
    }
  })
})

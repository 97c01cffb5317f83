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

  it('should pick the first supported type of the Accept header', () => {
    assert.equal(
      chooseEventFormat('text/html, text/csv;q=0.9, application/json', 'r')
        .contentType,
      'text/csv; charset=utf-8',
    )
    assert.equal(
      chooseEventFormat('*/*', 'r').contentType,
      'application/json; charset=utf-8',
    )
    for (const odd of [
      'constructor',
      '__proto__',
      'toString',
      'hasOwnProperty',
    ]) {
      assert.equal(
        chooseEventFormat(odd, 'r').contentType,
        'application/json; charset=utf-8',
        odd,
      )
    }
    assert.equal(
      chooseEventFormat('APPLICATION/X-NDJSON', 'r').contentType,
      'application/x-ndjson; charset=utf-8',
    )
  })
})

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { chooseEventFormat, renderEvents } from './formats.ts'
import type { StoredEvent } from '../store/store.ts'

async function* pages(...list: StoredEvent[][]) {
  yield* list
}

async function render(
  accept: string | undefined,
  robot: string,
  ...list: StoredEvent[][]
) {
  const format = chooseEventFormat(accept, robot)
  let text = ''
  for await (const chunk of renderEvents(pages(...list), format)) text += chunk
  return { type: format.contentType, text }
}

const e1 = { timestamp: 1, x: 0.5, y: -2 }
const e2 = { timestamp: 2, x: 1e21, y: 0 }

describe('event formats', () => {
  it('should write a JSON array across pages that JSON.parse reads back', async () => {
    const { type, text } = await render(undefined, 'a"b', [e1], [e2])
    assert.equal(type, 'application/json; charset=utf-8')
    assert.deepStrictEqual(JSON.parse(text), [
      { robot: 'a"b', x: 0.5, y: -2, timestamp: 1 },
      { robot: 'a"b', x: 1e21, y: 0, timestamp: 2 },
    ])
    assert.equal((await render('application/json', 'r')).text, '[]')
  })

  it('should write one JSON object per line as NDJSON', async () => {
    const { type, text } = await render('application/x-ndjson', 'r', [e1, e2])
    assert.equal(type, 'application/x-ndjson; charset=utf-8')
    assert.equal(
      text,
      '{"robot":"r","x":0.5,"y":-2,"timestamp":1}\n{"robot":"r","x":1e+21,"y":0,"timestamp":2}\n',
    )
    assert.equal((await render('application/x-ndjson', 'r')).text, '')
  })

  it('should write CSV with a header and quote names that need it', async () => {
    const { type, text } = await render('text/csv', 'a,"b"', [e1])
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

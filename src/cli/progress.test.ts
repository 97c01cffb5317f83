import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  RateMeter,
  startProgressBar,
  startStatusLine,
  type StatusStream,
} from './progress.ts'

/** A stream that keeps what is written; a terminal when `isTTY`. */
function stream(isTTY: boolean): StatusStream & { text: string } {
  return {
    isTTY,
    columns: 120,
    text: '',
    write(chunk: string) {
      this.text += chunk
      return true
    },
  }
}

/** Waits until `check` holds, checking every few milliseconds (no deadline: the runner's timeout is the guard). */
async function until(check: () => boolean) {
  while (!check()) await sleep(5)
}

/** The escape character, which starts every terminal control sequence. */
const ESC = '\u001b'

describe('the live output of the commands', () => {
  it('should draw the status line in place on a terminal, and end it on stop', () => {
    const out = stream(true)
    let sent = 1
    const status = startStatusLine(() => `sent ${sent}`, {
      stream: out,
      label: 'simulate: ',
    })
    sent = 2
    status.stop()
    // Back to column 1, the line, then cleared to its end.
    assert.ok(out.text.includes(`${ESC}[1Gsimulate: sent 1${ESC}[0K`), out.text)
    assert.ok(out.text.includes(`${ESC}[1Gsimulate: sent 2${ESC}[0K`), out.text)
    assert.ok(out.text.endsWith('\n'), JSON.stringify(out.text))
  })

  it('should draw a bar with its percentage when the total is known', () => {
    const out = stream(true)
    const bar = startProgressBar(
      () => ({ value: 5, total: 10, text: '5 of 10 events' }),
      { stream: out, label: 'export: ' },
    )
    bar.stop()
    assert.match(out.text, /export: \[=+-+\] 50% \| 5 of 10 events \| ETA/)
  })

  it('should write plain lines without control characters anywhere else', async () => {
    const out = stream(false)
    const bar = startProgressBar(
      () => ({ value: 1, total: 4, text: '1 line' }),
      { stream: out, label: 'replay: ', plainEveryMs: 1 },
    )
    await until(() => out.text.includes('\n'))
    bar.stop()
    const after = out.text
    assert.match(after, /^(?:replay: 1 line \(25%\)\n)+$/)
    assert.ok(!after.includes(ESC) && !after.includes('\r'), after)
    // Stopped: nothing more.
    await sleep(10)
    assert.equal(out.text, after)
  })

  it('should write nothing at all before the first plain line is due', () => {
    const out = stream(false)
    startStatusLine(() => 'sent 0', { stream: out }).stop()
    assert.equal(out.text, '')
  })
})

describe('RateMeter', () => {
  it('should give the rate over its window, from 0 at its start', () => {
    const meter = new RateMeter(3000, 0)
    assert.equal(meter.sample(100, 1000), 100)
    assert.equal(meter.sample(300, 2000), 150)
    // Samples older than the window are left behind.
    assert.equal(meter.sample(900, 5000), 200)
    assert.equal(meter.sample(900, 9000), 0)
  })
})

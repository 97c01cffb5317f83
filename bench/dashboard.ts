/**
 * The dashboard meter: its own process, started by run.ts as
 * `node dist/bench/dashboard.js '<DashboardOptions as JSON>'`.
 *
 * It starts headless Chromium with the test kit's `launchBrowser` (Debian's
 * `chromium`, never a downloaded one), opens the dashboard's fleet view and
 * records in the page, from its first script on: the start of every frame
 * (`requestAnimationFrame`) and every long task (`PerformanceObserver`,
 * `longtask`), both as wall-clock times (`performance.timeOrigin` plus the
 * page's clock), so that run.ts can keep those inside the load generator's
 * measured window (frames.ts). Stdout carries JSON lines: a `ready` phase
 * once the fleet view is open (run.ts then starts the load), and one final
 * `result` line ({@link DashboardResult}) after `recordMs`.
 */
import type { Page } from 'playwright-core'
import { launchBrowser, pageErrors } from '../test/support/browser.ts'
import type { LongTask } from './frames.ts'

/** What run.ts asks of the dashboard meter. */
export interface DashboardOptions {
  /** The server, `http://127.0.0.1:PORT`. */
  readonly url: string
  /** Robots the fleet table is expected to show. */
  readonly robots: number
  /** How long the page records after `ready`, ms. */
  readonly recordMs: number
  /** Bound on starting the browser and opening the page, ms. */
  readonly openTimeoutMs: number
  readonly viewport: { readonly width: number; readonly height: number }
}

/** The one JSON line the meter prints last. */
export interface DashboardResult {
  readonly type: 'result'
  readonly options: DashboardOptions
  /** The browser's version, as it reports it. */
  readonly browser: string
  /** Start of each frame the page drew, wall-clock ms, in order. */
  readonly frames: number[]
  /** Each long task: its start (wall-clock ms) and duration (ms). */
  readonly longTasks: LongTask[]
  /** Wall-clock ms of the `ready` phase and of the end of the recording. */
  readonly readyAt: number
  readonly endAt: number
  /**
   * Wall-clock ms at which the table first showed every robot (checked
   * every 250 ms); null when it never did.
   */
  readonly fullAt: number | null
  /** Rows the fleet table draws at the end (those in view), and its count line. */
  readonly rows: number
  readonly countText: string
  /** What the page logged as an error (console, exceptions, requests). */
  readonly errors: string[]
}

/** Wall-clock ms, as the page's `timeOrigin + now()` gives it. */
const wallClock = () => performance.timeOrigin + performance.now()

/**
 * Installed before the page's own scripts: a frame loop that notes the
 * start of each frame, and a long-task observer. Text, not a function: the
 * bench compiles without the DOM's types.
 */
const RECORDER = `(() => {
  const frames = []
  const longTasks = []
  window.__benchDashboard = { frames, longTasks }
  const frame = (t) => {
    frames.push(performance.timeOrigin + t)
    requestAnimationFrame(frame)
  }
  requestAnimationFrame(frame)
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      longTasks.push([performance.timeOrigin + e.startTime, e.duration])
    }
  }).observe({ type: 'longtask', buffered: true })
})()`

/** The fleet table's count line and rows, read in the page. */
async function table(page: Page): Promise<{ text: string; rows: number }> {
  return (await page.evaluate(`({
    text: document.querySelector('#robot-count')?.textContent ?? '',
    rows: document.querySelectorAll('#robots tbody tr[data-robot]').length,
  })`)) as { text: string; rows: number }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function main(options: DashboardOptions): Promise<DashboardResult> {
  const browser = await launchBrowser()
  try {
    const page = await browser.newPage({ viewport: options.viewport })
    const errors = pageErrors(page)
    await page.addInitScript(RECORDER)
    const response = await page.goto(`${options.url}/`, {
      timeout: options.openTimeoutMs,
    })
    if (response === null || !response.ok()) {
      // A server from before the dashboard (`--server DIR`) answers 404.
      throw new Error(`GET / answered ${response?.status()}: no dashboard`)
    }
    await page.waitForSelector('#fleet-view:not([hidden])', {
      timeout: options.openTimeoutMs,
    })
    const readyAt = wallClock()
    process.stdout.write(
      `${JSON.stringify({ type: 'phase', phase: 'ready' })}\n`,
    )

    // Until the recording ends: when the table first shows every robot.
    const full = `${options.robots} of ${options.robots} robots`
    let fullAt: number | null = null
    const until = readyAt + options.recordMs
    while (wallClock() < until) {
      if (fullAt === null && (await table(page)).text === full) {
        fullAt = wallClock()
      }
      await sleep(Math.min(250, Math.max(0, until - wallClock())))
    }
    const endAt = wallClock()
    const recorded = (await page.evaluate('window.__benchDashboard')) as {
      frames: number[]
      longTasks: LongTask[]
    }
    const shown = await table(page)
    return {
      type: 'result',
      options,
      browser: browser.version(),
      frames: recorded.frames,
      longTasks: recorded.longTasks,
      readyAt,
      endAt,
      fullAt,
      rows: shown.rows,
      countText: shown.text,
      errors,
    }
  } finally {
    await browser.close()
  }
}

const options = JSON.parse(process.argv[2] ?? '{}') as DashboardOptions
main(options).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
  },
  (error: unknown) => {
    process.stderr.write(
      `dashboard: ${(error as Error).stack ?? String(error)}\n`,
    )
    process.exit(1)
  },
)

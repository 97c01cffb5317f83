/**
 * Headless Chromium for the dashboard's tests: Debian's `chromium`
 * (`/usr/bin/chromium`, or `TELEMETRY_TEST_CHROMIUM`) driven by
 * `playwright-core`, never a downloaded browser. Elsewhere than CI a
 * missing browser skips the tests with a message; under CI=true it fails
 * them (`.ci/run` installs it).
 *
 * @example
 * const browser = await launchBrowser()
 * const page = await browser.newPage()
 */
import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'

/** The browser the tests drive. */
export const CHROMIUM_PATH =
  process.env.TELEMETRY_TEST_CHROMIUM ?? '/usr/bin/chromium'

/** `false` when Chromium is there (or under CI), else why the tests skip. */
export function browserSkip(): string | false {
  if (process.env.CI === 'true' || existsSync(CHROMIUM_PATH)) return false
  return `no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set TELEMETRY_TEST_CHROMIUM)`
}

/** Starts headless Chromium. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
}

/**
 * Collects what a page logs as an error: console errors, uncaught
 * exceptions and failed requests.
 */
export function pageErrors(page: Page): string[] {
  const errors: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`)
  })
  page.on('pageerror', (error) => errors.push(`page: ${error.message}`))
  page.on('requestfailed', (request) => {
    // A download link's object URL is revoked once saved: not a failure.
    if (request.url().startsWith('blob:')) return
    // The page closed its live feed (it left the view): its own doing.
    if (
      request.resourceType() === 'eventsource' &&
      request.failure()?.errorText === 'net::ERR_ABORTED'
    ) {
      return
    }
    errors.push(`request: ${request.url()} ${request.failure()?.errorText}`)
  })
  return errors
}

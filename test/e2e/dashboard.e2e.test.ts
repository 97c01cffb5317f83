/**
 * The dashboard in a real browser (headless Chromium from Debian, driven by
 * playwright-core): the fleet table and the plane update while robots
 * stream over /upstream, the table sorts and filters, a robot's view shows
 * the API's odometer for a chosen range and downloads its events, and a
 * token is asked for with access control on; on PostgreSQL, a page on one
 * process follows robots streaming through another. Nothing may be logged to the
 * browser console as an error. Screenshots of both views go to
 * dist/screenshots/ (docs/ holds copies).
 */
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import {
  IngestClient,
  SAFETY_TIMEOUT_MS,
  browserSkip,
  dropSchemas,
  freshSchema,
  launchBrowser,
  makeTempDir,
  pageErrors,
  postgresSkip,
  readOdometer,
  removeTempDir,
  request,
  robotPath,
  startServer,
  writeTokens,
  type ServerProcess,
  type TokensFile,
} from '../support/index.ts'

const skip = browserSkip()
if (skip !== false) console.log(`# skipping dashboard tests: ${skip}`)

/** Where the screenshots go: dist/screenshots/, from dist/test/e2e/. */
const SCREENSHOTS = new URL('../../screenshots/', import.meta.url).pathname

/** Waits until `check` (run in the page) is true. */
function until(page: Page, check: string, arg?: unknown) {
  return page.waitForFunction(check, arg, { timeout: SAFETY_TIMEOUT_MS })
}

/** The text of a cell of a robot's row in the fleet table. */
function cell(page: Page, robot: string, column: string) {
  return page
    .locator(`#robots tbody tr[data-robot="${robot}"] td.${column}`)
    .textContent()
}

describe('dashboard', { skip }, () => {
  let dir: string
  let tokens: TokensFile
  let server: ServerProcess
  let browser: Browser
  let robots: IngestClient

  before(async () => {
    dir = makeTempDir('telemetry-dashboard-')
    tokens = writeTokens(join(dir, 'tokens.json'), [
      { name: 'robots', role: 'ingest' },
      { name: 'viewer', role: 'read' },
    ])
    server = await startServer(['--tokens', tokens.file])
    browser = await launchBrowser()
    robots = await IngestClient.connect(server.wsUrl, { token: tokens.robots })
    mkdirSync(SCREENSHOTS, { recursive: true })
  })

  after(async () => {
    await robots?.close()
    await browser?.close()
    await server?.dispose()
    removeTempDir(dir)
  })

  /** A page on the dashboard with the viewer's token in its URL. */
  async function open(
    hash = '',
  ): Promise<{ page: Page; errors: string[]; feeds: string[] }> {
    const page = await browser.newPage({
      viewport: { width: 1280, height: 900 },
    })
    const errors = pageErrors(page)
    // The live feeds the page opens.
    const feeds: string[] = []
    page.on('request', (request) => {
      if (request.resourceType() === 'eventsource') feeds.push(request.url())
    })
    await page.goto(`${server.url}/?access_token=${tokens.viewer}${hash}`)
    return { page, errors, feeds }
  }

  test('shows the fleet and follows it live, table and plane', async () => {
    assert.equal(
      (await robots.send('0,0,1000,Bender\n10,5,1000,Flexo')).split('\n')
        .length,
      2,
    )
    const { page, errors, feeds } = await open()
    await until(
      page,
      `document.querySelector('#robots tbody tr[data-robot="Flexo"]') !== null`,
    )
    // The token left the address bar once taken.
    assert.doesNotMatch(page.url(), /access_token/)
    assert.equal(await cell(page, 'Bender', 'count'), '1')

    // Robots move: the table follows without a reload.
    assert.equal(
      await robots.send('3,4,2000,Bender\n6,8,3000,Bender'),
      'OK\nOK',
    )
    // Positions and odometers come from the live feed; the event count
    // from the list, read again every 10 s.
    await until(
      page,
      `document.querySelector('#robots tbody tr[data-robot="Bender"] td.x')?.textContent === '6'`,
    )
    assert.deepEqual(feeds, [
      `${server.url}/api/live?access_token=${tokens.viewer}`,
    ])
    assert.equal(await cell(page, 'Bender', 'y'), '8')
    assert.equal(await cell(page, 'Bender', 'odometer'), '10')
    await until(
      page,
      `document.querySelector('#robots tbody tr[data-robot="Bender"] td.count')?.textContent === '3'`,
    )
    assert.match(
      (await page.locator('#robot-count').textContent()) ?? '',
      /^2 of 2 robots$/,
    )

    // The plane has drawn something.
    // (The page's code, as text: the tests compile without the DOM's types.)
    const painted = (await page.evaluate(`(() => {
      const canvas = document.querySelector('#plane')
      const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data
      let n = 0
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++
      return n
    })()`)) as number
    assert.ok(painted > 0, 'the plane shows the robots')
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-fleet.png') })

    // Zoomed in and panned away, Bender leaves the view; Fit brings it back.
    const pointOf = async (name: string) =>
      (await page.evaluate(
        `document.querySelector('#plane').pointOf(${JSON.stringify(name)})`,
      )) as [number, number]
    const canvas = (await page.locator('#plane').boundingBox())!
    const inside = ([x, y]: [number, number]) =>
      x >= 0 && y >= 0 && x <= canvas.width && y <= canvas.height
    assert.ok(inside(await pointOf('Bender')), 'fitted: Bender is in view')
    await page.mouse.move(
      canvas.x + canvas.width / 2,
      canvas.y + canvas.height / 2,
    )
    await page.mouse.wheel(0, -2000)
    await page.mouse.down()
    await page.mouse.move(
      canvas.x + canvas.width - 5,
      canvas.y + canvas.height - 5,
      {
        steps: 5,
      },
    )
    await page.mouse.up()
    assert.ok(!inside(await pointOf('Bender')), 'zoomed and panned away')
    await page.click('#fit')
    const [bx, by] = await pointOf('Bender')
    assert.ok(inside([bx, by]), 'fitted again')

    // A click on a robot's point opens it.
    await page.mouse.click(canvas.x + bx, canvas.y + by)
    await until(page, `location.hash === '#/robots/Bender'`)
    await until(page, `!document.querySelector('#robot-view').hidden`)
    assert.deepEqual(errors, [])
    await page.close()
  })

  test('sorts by a column and filters by name', async () => {
    const { page, errors } = await open()
    await until(
      page,
      `document.querySelectorAll('#robots tbody tr[data-robot]').length >= 2`,
    )
    const names = async () =>
      (await page.evaluate(
        `[...document.querySelectorAll('#robots tbody tr[data-robot]')].map((row) => row.dataset.robot)`,
      )) as string[]
    assert.deepEqual(await names(), ['Bender', 'Flexo'])
    // By x: Bender at 6, Flexo at 10; twice for descending.
    await page.click('#robots th[data-sort="x"]')
    await page.click('#robots th[data-sort="x"]')
    assert.deepEqual(await names(), ['Flexo', 'Bender'])
    await page.fill('#filter', 'fle')
    assert.deepEqual(await names(), ['Flexo'])
    assert.deepEqual(errors, [])
    await page.close()
  })

  test("opens a robot: the API's odometer for a chosen range, its events, and downloads", async () => {
    const { page, errors } = await open()
    await until(
      page,
      `document.querySelector('#robots tbody tr[data-robot="Bender"]') !== null`,
    )
    await page.click('#robots tbody tr[data-robot="Bender"]')
    await until(page, `!document.querySelector('#robot-view').hidden`)
    await until(
      page,
      `document.querySelectorAll('#events tbody tr').length === 3`,
    )
    assert.equal(await page.locator('#robot-name').textContent(), 'Bender')
    assert.equal(await page.inputValue('#start'), '1000')
    assert.equal(await page.inputValue('#end'), '3000')

    // A range of two of its three events: (3,4) to (6,8), 5 apart.
    await page.fill('#start', '1500')
    await page.fill('#end', '3000')
    await page.click('#range-form button[type="submit"]')
    await until(
      page,
      `document.querySelectorAll('#events tbody tr').length === 2`,
    )
    const api = await readOdometer(
      { url: server.url, token: tokens.viewer },
      'Bender',
      { start_time: 1500, end_time: 3000 },
    )
    assert.equal(api.odometer, 5)
    assert.equal(
      await page.locator('#odometer').textContent(),
      String(api.odometer),
    )
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-robot.png') })

    // The downloads are the API's answers for the range.
    for (const [button, accept] of [
      ['#download-csv', 'text/csv'],
      ['#download-ndjson', 'application/x-ndjson'],
    ] as const) {
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: SAFETY_TIMEOUT_MS }),
        page.click(button),
      ])
      const saved = readFileSync((await download.path())!, 'utf8')
      const expected = await request(
        { url: server.url, token: tokens.viewer },
        robotPath('Bender', '/events?start_time=1500&end_time=3000'),
        { headers: { accept } },
      )
      assert.equal(expected.status, 200)
      assert.equal(saved, expected.text, button)
      assert.equal(
        saved.trim().split('\n').length,
        accept === 'text/csv' ? 3 : 2,
      )
    }

    // The range ends at the latest event: the view follows the robot live.
    assert.equal(await robots.send('6,11,4000,Bender'), 'OK')
    await until(page, `document.querySelector('#end').value === '4000'`)
    await until(page, `document.querySelector('#odometer').textContent === '8'`)
    const live = await readOdometer(
      { url: server.url, token: tokens.viewer },
      'Bender',
      { start_time: 1500, end_time: 4000 },
    )
    assert.equal(live.odometer, 8)
    assert.deepEqual(errors, [])
    await page.close()
  })

  test('asks for a token with access control on, and takes one', async () => {
    const page = await browser.newPage()
    const errors = pageErrors(page)
    await page.goto(`${server.url}/`)
    await until(page, `!document.querySelector('#token-view').hidden`)
    await page.fill('#token', tokens.viewer!)
    await page.click('#token-form button[type="submit"]')
    await until(
      page,
      `document.querySelector('#robots tbody tr[data-robot="Bender"]') !== null`,
    )
    // The page's own 401 before the token is the one failure it may see.
    assert.deepEqual(
      errors.filter((e) => !/401 \(Unauthorized\)/.test(e)),
      [],
    )
    await page.close()
  })
})

const noPostgres = await postgresSkip()

describe(
  'dashboard on PostgreSQL, two processes',
  {
    skip: skip !== false ? skip : noPostgres,
  },
  () => {
    const { schema, url } = freshSchema()
    let servers: ServerProcess[] = []
    let browser: Browser

    before(async () => {
      servers = await Promise.all(
        [0, 1].map(() => startServer([], {}, { store: url })),
      )
      browser = await launchBrowser()
    })
    after(async () => {
      await browser?.close()
      await Promise.all(servers.map((s) => s.dispose()))
      await dropSchemas([schema])
    })

    test('shows on one process the robots that stream through the other, live', async (t) => {
      const [shown, ingest] = servers as [ServerProcess, ServerProcess]
      const robots = await IngestClient.connect(ingest.wsUrl)
      t.after(() => robots.close())
      assert.equal(await robots.send('0,0,1,Roberto'), 'OK')
      const page = await browser.newPage({
        viewport: { width: 1280, height: 900 },
      })
      const errors = pageErrors(page)
      await page.goto(`${shown.url}/`)
      await until(
        page,
        `document.querySelector('#robots tbody tr[data-robot="Roberto"]') !== null`,
      )
      // Committed through the other process: the feed brings it here.
      assert.equal(await robots.send('3,4,2,Roberto\n6,8,3,Roberto'), 'OK\nOK')
      await until(
        page,
        `document.querySelector('#robots tbody tr[data-robot="Roberto"] td.x')?.textContent === '6'`,
      )
      assert.equal(await cell(page, 'Roberto', 'odometer'), '10')
      // A robot new to the fleet appears without a reload.
      assert.equal(await robots.send('1,1,1,Calculon'), 'OK')
      await until(
        page,
        `document.querySelector('#robots tbody tr[data-robot="Calculon"]') !== null`,
      )
      assert.deepEqual(errors, [])
      await page.close()
    })
  },
)

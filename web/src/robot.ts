/**
 * The robot view: for a time range, the robot's path on the plane, its
 * odometer (the API's own figure), a chart of cumulative distance over
 * time (uPlot), its events page by page, and downloads as CSV or NDJSON.
 *
 * While the range ends at the robot's latest event, the view follows the
 * robot's live feed (`GET /api/live?robot=…`): new events extend the range,
 * the path, the chart and the odometer, drawn at most once a frame.
 */
import uPlot from 'uplot'
import {
  follow,
  get,
  getJson,
  nextPage,
  robotPath,
  type Event,
  type Position,
  type Robot,
} from './api.ts'
import { formatNumber } from './fleet.ts'
import { Plane } from './plane.ts'

/** Events read for the path and the chart, at most. */
const PATH_EVENTS = 20_000
/** Events a page of the table. */
const PAGE = 100

export class RobotView {
  readonly #title: HTMLElement
  readonly #start: HTMLInputElement
  readonly #end: HTMLInputElement
  readonly #odometer: HTMLOutputElement
  readonly #events: HTMLTableSectionElement
  readonly #next: HTMLButtonElement
  readonly #path: Plane
  readonly #chartBox: HTMLElement
  #chart: uPlot | undefined
  #name = ''
  #nextPath: string | undefined
  /** The range's events, for the path and the chart. */
  #rangeEvents: Event[] = []
  #rangeOdometer: number | null = 0
  /** The robot's latest timestamp known here. */
  #latest = -1
  #unfollow: (() => void) | undefined
  #drawPending = false

  constructor() {
    this.#title = document.querySelector('#robot-name')!
    this.#start = document.querySelector('#start')!
    this.#end = document.querySelector('#end')!
    this.#odometer = document.querySelector('#odometer')!
    this.#events = document.querySelector('#events tbody')!
    this.#next = document.querySelector('#next-page')!
    this.#path = new Plane(document.querySelector('#path')!)
    this.#chartBox = document.querySelector('#distance-chart')!
    document.querySelector('#range-form')!.addEventListener('submit', (e) => {
      e.preventDefault()
      void this.#showRange()
    })
    this.#next.addEventListener(
      'click',
      () => void this.#showPage(this.#nextPath),
    )
    document
      .querySelector('#download-csv')!
      .addEventListener('click', () => void this.#download('text/csv', 'csv'))
    document
      .querySelector('#download-ndjson')!
      .addEventListener(
        'click',
        () => void this.#download('application/x-ndjson', 'ndjson'),
      )
  }

  /** Opens robot `name` over its whole life. */
  async open(name: string): Promise<void> {
    this.stop()
    this.#name = name
    this.#title.textContent = name
    const robot = await getJson<Robot>(robotPath(name))
    this.#start.value = String(robot.first_timestamp)
    this.#end.value = String(robot.last_timestamp)
    this.#latest = robot.last_timestamp
    await this.#showRange()
    this.#unfollow = follow([name], (p) => this.#position(p))
  }

  /** Stops following the robot (another view is shown). */
  stop(): void {
    this.#unfollow?.()
    this.#unfollow = undefined
  }

  /** A live event: extends the range when it ends at the latest event. */
  #position(p: Position) {
    if (p.timestamp <= this.#latest) return
    const following = Number(this.#end.value) >= this.#latest
    this.#latest = p.timestamp
    if (!following) return
    this.#end.value = String(p.timestamp)
    const before = this.#rangeEvents.at(-1)
    if (before !== undefined && this.#rangeOdometer !== null) {
      this.#rangeOdometer += Math.hypot(p.x - before.x, p.y - before.y)
    }
    this.#rangeEvents.push({ timestamp: p.timestamp, x: p.x, y: p.y })
    if (this.#drawPending) return
    this.#drawPending = true
    requestAnimationFrame(() => {
      this.#drawPending = false
      this.#odometer.value = formatNumber(this.#rangeOdometer)
      this.#drawPath(false)
      this.#drawChart(this.#rangeEvents)
    })
  }

  #drawPath(fit: boolean) {
    const events = this.#rangeEvents
    const trail = events.map((e) => [e.x, e.y] as const)
    const last = events.at(-1)
    this.#path.show(
      last === undefined
        ? []
        : [{ name: this.#name, x: last.x, y: last.y, trail }],
      this.#name,
    )
    if (fit) this.#path.fit()
  }

  #query(extra: Record<string, string> = {}): string {
    const params = new URLSearchParams({
      start_time: this.#start.value,
      end_time: this.#end.value,
      ...extra,
    })
    return `?${params}`
  }

  async #showRange() {
    const name = this.#name
    const odometer = await getJson<{ odometer: number | null }>(
      robotPath(name, `/odometer${this.#query()}`),
    )
    this.#odometer.value = formatNumber(odometer.odometer)
    this.#rangeOdometer = odometer.odometer
    const events = await getJson<Event[]>(
      robotPath(name, `/events${this.#query({ limit: String(PATH_EVENTS) })}`),
    )
    this.#rangeEvents = events
    this.#drawPath(true)
    this.#drawChart(events)
    await this.#showPage(
      robotPath(name, `/events${this.#query({ limit: String(PAGE) })}`),
    )
  }

  /** Cumulative distance over time, summed over consecutive events. */
  #drawChart(events: readonly Event[]) {
    const times: number[] = []
    const distance: number[] = []
    let total = 0
    events.forEach((e, i) => {
      const before = events[i - 1]
      if (before !== undefined)
        total += Math.hypot(e.x - before.x, e.y - before.y)
      times.push(e.timestamp)
      distance.push(total)
    })
    this.#chart?.destroy()
    this.#chart = new uPlot(
      {
        width: Math.max(300, this.#chartBox.clientWidth || 480),
        height: 320,
        title: 'Cumulative distance',
        scales: { x: { time: false } },
        series: [
          { label: 'timestamp' },
          { label: 'distance', stroke: '#4f46e5' },
        ],
      },
      [times, distance],
      this.#chartBox,
    )
  }

  async #showPage(path: string | undefined) {
    if (path === undefined) return
    const response = await get(path)
    const events = (await response.json()) as Event[]
    this.#nextPath = nextPage(response)
    this.#next.disabled = this.#nextPath === undefined
    this.#events.replaceChildren(
      ...events.map((e) => {
        const tr = document.createElement('tr')
        for (const value of [
          String(e.timestamp),
          formatNumber(e.x),
          formatNumber(e.y),
        ]) {
          const td = document.createElement('td')
          td.textContent = value
          tr.append(td)
        }
        return tr
      }),
    )
  }

  /** Saves the range's events in a format of the API, as a file. */
  async #download(accept: string, extension: string) {
    const response = await get(
      robotPath(this.#name, `/events${this.#query()}`),
      accept,
    )
    const url = URL.createObjectURL(await response.blob())
    const a = document.createElement('a')
    a.href = url
    a.download = `${this.#name}.${extension}`
    a.click()
    setTimeout(() => URL.revokeObjectURL(url), 10_000)
  }
}

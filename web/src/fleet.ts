/**
 * The fleet view: every robot in a table (sortable, filterable by name)
 * beside the x,y plane with each robot's position and a short trail. It
 * reads `GET /api/robots` once, then follows the live feed (`GET
 * /api/live`, the whole fleet, coalesced by the server to 10 updates a
 * second) for positions and odometers, and redraws at most twice a second.
 * The feed carries no event counts: the list is read again every 10 s.
 *
 * The table draws only the rows in view (and a few more), between two
 * spacer rows: a thousand rows rebuilt every second cost the page 200 to
 * 300 ms frames in style and layout (the `dashboard` scenario of the
 * bench); thirty cost nothing.
 */
import { follow, getJson, type Position, type Robot } from './api.ts'
import { Plane, type Mark } from './plane.ts'

/** Positions kept per robot for its trail. */
const TRAIL = 20
/** The height of a row of the table, in CSS pixels (style.css). */
const ROW_PX = 30
/** Least time between two redraws for the live feed, in ms. */
const RENDER_MS = 500
/** Rows drawn beyond those in view, above and below. */
const OVERSCAN = 10
const COLUMNS = 6

type SortKey = 'name' | 'x' | 'y' | 'seen' | 'odometer' | 'count'

const SORT_VALUE: Record<SortKey, (r: Robot) => number | string> = {
  name: (r) => r.name,
  x: (r) => r.last_x,
  y: (r) => r.last_y,
  seen: (r) => r.last_timestamp,
  odometer: (r) => r.odometer ?? Infinity,
  count: (r) => r.event_count,
}

/** A number as the tables show it. */
export function formatNumber(value: number | null): string {
  if (value === null) return '∞'
  return Number.isInteger(value)
    ? String(value)
    : value.toFixed(Math.abs(value) < 100 ? 3 : 1)
}

/** A robot as the table keeps it: the list's fields, moved by the feed. */
type Row = { -readonly [K in keyof Robot]: Robot[K] }

export class FleetView {
  readonly #body: HTMLTableSectionElement
  readonly #scroller: HTMLElement
  readonly #filter: HTMLInputElement
  readonly #count: HTMLElement
  readonly #headers: HTMLTableCellElement[]
  readonly #plane: Plane
  readonly #robots = new Map<string, Row>()
  /** The robots the filter lets through, in the table's order. */
  #shown: Row[] = []
  #drawPending = false
  #renderPending = false
  #renderedAt = -Infinity
  #unfollow: (() => void) | undefined
  readonly #trails = new Map<string, [number, number][]>()
  #sort: { key: SortKey; descending: boolean } = {
    key: 'name',
    descending: false,
  }

  constructor(open: (name: string) => void) {
    this.#body = document.querySelector('#robots tbody')!
    this.#scroller = document.querySelector('#robots-scroll')!
    this.#scroller.addEventListener('scroll', () => {
      if (this.#drawPending) return
      this.#drawPending = true
      requestAnimationFrame(() => {
        this.#drawPending = false
        this.#drawRows()
      })
    })
    this.#filter = document.querySelector('#filter')!
    this.#count = document.querySelector('#robot-count')!
    this.#headers = [
      ...document.querySelectorAll<HTMLTableCellElement>('#robots th'),
    ]
    this.#plane = new Plane(document.querySelector('#plane')!)
    this.#plane.onPick(open)
    document
      .querySelector('#fit')!
      .addEventListener('click', () => this.#plane.fit())
    this.#filter.addEventListener('input', () => this.#render())
    for (const th of this.#headers) {
      th.addEventListener('click', () => {
        const key = th.dataset.sort as SortKey
        this.#sort = {
          key,
          descending: this.#sort.key === key ? !this.#sort.descending : false,
        }
        this.#render()
      })
    }
    this.#body.addEventListener('click', (e) => {
      const row = (e.target as HTMLElement).closest('tr')
      if (row?.dataset.robot !== undefined) open(row.dataset.robot)
    })
  }

  /** Reads the robots (again) and shows them; follows the feed from the first call on. */
  async refresh(): Promise<void> {
    const robots = await getJson<Robot[]>('/api/robots')
    for (const robot of robots) {
      const row = this.#robots.get(robot.name)
      // The feed may be ahead of the list: keep its position.
      if (row === undefined || row.last_timestamp <= robot.last_timestamp) {
        this.#robots.set(robot.name, { ...robot })
        this.#moved(robot.name, robot.last_x, robot.last_y)
      } else row.event_count = Math.max(row.event_count, robot.event_count)
    }
    this.#unfollow ??= follow(undefined, (p) => this.#position(p))
    this.#render()
  }

  /** Stops following the feed (another view is shown). */
  stop(): void {
    this.#unfollow?.()
    this.#unfollow = undefined
  }

  #position(p: Position) {
    let row = this.#robots.get(p.robot)
    if (row !== undefined && p.timestamp <= row.last_timestamp) return
    const now = new Date().toISOString()
    if (row === undefined) {
      row = {
        name: p.robot,
        odometer: p.odometer,
        last_x: p.x,
        last_y: p.y,
        first_timestamp: p.timestamp,
        last_timestamp: p.timestamp,
        event_count: 1,
        updated_time: now,
      }
      this.#robots.set(p.robot, row)
    } else {
      row.last_x = p.x
      row.last_y = p.y
      row.last_timestamp = p.timestamp
      row.odometer = p.odometer
      row.event_count++ // at least one more; the next list read says how many
      row.updated_time = now
    }
    this.#moved(p.robot, p.x, p.y)
    if (this.#renderPending) return
    this.#renderPending = true
    // A thousand robots' trails redrawn at every 10 Hz tick held frames up
    // (the bench's `dashboard` scenario: p99 133 ms): at most 2 redraws a
    // second, each in an animation frame.
    const wait = Math.max(0, this.#renderedAt + RENDER_MS - performance.now())
    setTimeout(() => {
      requestAnimationFrame(() => {
        this.#renderPending = false
        this.#renderedAt = performance.now()
        this.#render()
      })
    }, wait)
  }

  #moved(name: string, x: number, y: number) {
    const trail = this.#trails.get(name) ?? []
    const last = trail.at(-1)
    if (last === undefined || last[0] !== x || last[1] !== y) {
      trail.push([x, y])
      if (trail.length > TRAIL) trail.shift()
    }
    this.#trails.set(name, trail)
  }

  /** Draws the rows in view of the scroller, between two spacers. */
  #drawRows() {
    const shown = this.#shown
    const height = this.#scroller.clientHeight || 600
    const first = Math.max(
      0,
      Math.floor(this.#scroller.scrollTop / ROW_PX) - OVERSCAN,
    )
    const last = Math.min(
      shown.length,
      Math.ceil((this.#scroller.scrollTop + height) / ROW_PX) + OVERSCAN,
    )
    const rows = [spacer(first * ROW_PX)]
    for (let i = first; i < last; i++) rows.push(robotRow(shown[i]!))
    rows.push(spacer((shown.length - last) * ROW_PX))
    this.#body.replaceChildren(...rows)
  }

  #render() {
    const needle = this.#filter.value.trim().toLowerCase()
    const shown = [...this.#robots.values()].filter((r) =>
      r.name.toLowerCase().includes(needle),
    )
    const { key, descending } = this.#sort
    const value = SORT_VALUE[key]
    shown.sort((a, b) => {
      const va = value(a)
      const vb = value(b)
      const order = va < vb ? -1 : va > vb ? 1 : 0
      return descending ? -order : order
    })
    for (const th of this.#headers) {
      th.classList.toggle('sorted-asc', th.dataset.sort === key && !descending)
      th.classList.toggle('sorted-desc', th.dataset.sort === key && descending)
    }
    this.#shown = shown
    this.#drawRows()
    this.#count.textContent = `${shown.length} of ${this.#robots.size} robots`
    const marks: Mark[] = shown.map((robot) => ({
      name: robot.name,
      x: robot.last_x,
      y: robot.last_y,
      trail: this.#trails.get(robot.name) ?? [],
    }))
    this.#plane.show(marks)
  }
}

/** A row of the table. */
function robotRow(robot: Robot): HTMLTableRowElement {
  const tr = document.createElement('tr')
  tr.dataset.robot = robot.name
  const cells: [string, string][] = [
    ['name', robot.name],
    ['x', formatNumber(robot.last_x)],
    ['y', formatNumber(robot.last_y)],
    [
      'seen',
      `${robot.last_timestamp} (${new Date(robot.updated_time).toLocaleTimeString()})`,
    ],
    ['odometer', formatNumber(robot.odometer)],
    ['count', String(robot.event_count)],
  ]
  for (const [name, text] of cells) {
    const td = document.createElement('td')
    td.className = name
    td.textContent = text
    tr.append(td)
  }
  return tr
}

/** An empty row of `px` pixels that stands for the rows not drawn. */
function spacer(px: number): HTMLTableRowElement {
  const tr = document.createElement('tr')
  tr.className = 'spacer'
  const td = document.createElement('td')
  td.colSpan = COLUMNS
  td.style.height = `${px}px`
  tr.append(td)
  return tr
}

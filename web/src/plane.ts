/**
 * The x,y plane of the fleet on a canvas: the robots' own coordinates (not
 * latitude and longitude), y up. Fit to the points, pan by dragging, zoom
 * with the wheel around the pointer; a click near a point names its robot.
 */

/** One robot on the plane: its position now and its last few positions. */
export interface Mark {
  readonly name: string
  readonly x: number
  readonly y: number
  readonly trail: readonly (readonly [number, number])[]
}

/** Pixels around a point that a click still hits. */
const HIT_PX = 8

export class Plane {
  readonly #canvas: HTMLCanvasElement
  readonly #context: CanvasRenderingContext2D
  /** The plane's point at the canvas centre, and pixels per unit. */
  #cx = 0
  #cy = 0
  #scale = 1
  #marks: readonly Mark[] = []
  /** Whether the user moved the view: until then it fits every update. */
  #moved = false
  #selected: string | undefined
  #onPick: (name: string) => void = () => {}

  constructor(canvas: HTMLCanvasElement) {
    this.#canvas = canvas
    this.#context = canvas.getContext('2d')!
    // Where a robot is drawn, in CSS pixels of the element: for the
    // browser tests, which click robots as a user would.
    Object.assign(canvas, {
      pointOf: (name: string) => this.#pointOf(name),
    })
    let drag: { x: number; y: number; moved: boolean } | undefined
    canvas.addEventListener('pointerdown', (e) => {
      drag = { x: e.offsetX, y: e.offsetY, moved: false }
      canvas.setPointerCapture(e.pointerId)
    })
    canvas.addEventListener('pointermove', (e) => {
      if (drag === undefined) return
      const [dx, dy] = this.#toPixels(e.offsetX - drag.x, e.offsetY - drag.y)
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true
      this.#cx -= dx / this.#scale
      this.#cy += dy / this.#scale
      drag.x = e.offsetX
      drag.y = e.offsetY
      if (drag.moved) this.#moved = true
      this.draw()
    })
    canvas.addEventListener('pointerup', (e) => {
      if (drag !== undefined && !drag.moved) {
        const name = this.#hit(e.offsetX, e.offsetY)
        if (name !== undefined) this.#onPick(name)
      }
      drag = undefined
    })
    canvas.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault()
        const [px, py] = this.#toPixels(e.offsetX, e.offsetY)
        const [x, y] = this.#toPlane(px, py)
        this.#scale *= Math.exp(-e.deltaY / 500)
        // The point under the pointer stays under it.
        const [x2, y2] = this.#toPlane(px, py)
        this.#cx += x - x2
        this.#cy += y - y2
        this.#moved = true
        this.draw()
      },
      { passive: false },
    )
  }

  /** Called with a robot's name when it is clicked. */
  onPick(pick: (name: string) => void): void {
    this.#onPick = pick
  }

  /** Shows `marks`, fitted to them unless the user moved the view. */
  show(marks: readonly Mark[], selected?: string): void {
    this.#marks = marks
    this.#selected = selected
    if (!this.#moved) this.#fit()
    this.draw()
  }

  /** Fits the view to every point and trail, and keeps it fitted. */
  fit(): void {
    this.#moved = false
    this.#fit()
    this.draw()
  }

  #fit(): void {
    let minX = Infinity
    let minY = Infinity
    let maxX = -Infinity
    let maxY = -Infinity
    for (const mark of this.#marks) {
      for (const [x, y] of [[mark.x, mark.y] as const, ...mark.trail]) {
        minX = Math.min(minX, x)
        maxX = Math.max(maxX, x)
        minY = Math.min(minY, y)
        maxY = Math.max(maxY, y)
      }
    }
    if (!Number.isFinite(minX)) return
    const { width, height } = this.#canvas
    const spanX = Math.max(maxX - minX, 1e-9)
    const spanY = Math.max(maxY - minY, 1e-9)
    this.#cx = (minX + maxX) / 2
    this.#cy = (minY + maxY) / 2
    this.#scale = 0.9 * Math.min(width / spanX, height / spanY)
    if (!Number.isFinite(this.#scale) || this.#scale <= 0) this.#scale = 1
  }

  draw(): void {
    const c = this.#context
    const { width, height } = this.#canvas
    c.clearRect(0, 0, width, height)
    c.lineWidth = 1
    for (const mark of this.#marks) {
      if (mark.trail.length < 2) continue
      c.strokeStyle = 'rgba(79, 70, 229, 0.35)'
      c.beginPath()
      mark.trail.forEach(([x, y], i) => {
        const [px, py] = this.#toCanvas(x, y)
        if (i === 0) c.moveTo(px, py)
        else c.lineTo(px, py)
      })
      c.stroke()
    }
    for (const mark of this.#marks) {
      const [px, py] = this.#toCanvas(mark.x, mark.y)
      const selected = mark.name === this.#selected
      c.fillStyle = selected ? '#dc2626' : '#4f46e5'
      c.beginPath()
      c.arc(px, py, selected ? 5 : 3.5, 0, 2 * Math.PI)
      c.fill()
    }
    // Names only when few enough to read.
    if (this.#marks.length <= 50) {
      c.fillStyle = '#1c2330'
      c.font = '11px system-ui, sans-serif'
      for (const mark of this.#marks) {
        const [px, py] = this.#toCanvas(mark.x, mark.y)
        c.fillText(mark.name, px + 6, py - 6)
      }
    }
  }

  #pointOf(name: string): [number, number] | undefined {
    const mark = this.#marks.find((m) => m.name === name)
    if (mark === undefined) return undefined
    const [px, py] = this.#toCanvas(mark.x, mark.y)
    const rect = this.#canvas.getBoundingClientRect()
    return [
      (px * rect.width) / this.#canvas.width,
      (py * rect.height) / this.#canvas.height,
    ]
  }

  /** CSS pixels of the element to canvas pixels. */
  #toPixels(x: number, y: number): [number, number] {
    const rect = this.#canvas.getBoundingClientRect()
    const sx = rect.width > 0 ? this.#canvas.width / rect.width : 1
    const sy = rect.height > 0 ? this.#canvas.height / rect.height : 1
    return [x * sx, y * sy]
  }

  #toCanvas(x: number, y: number): [number, number] {
    const { width, height } = this.#canvas
    return [
      width / 2 + (x - this.#cx) * this.#scale,
      height / 2 - (y - this.#cy) * this.#scale,
    ]
  }

  #toPlane(px: number, py: number): [number, number] {
    const { width, height } = this.#canvas
    return [
      this.#cx + (px - width / 2) / this.#scale,
      this.#cy - (py - height / 2) / this.#scale,
    ]
  }

  #hit(offsetX: number, offsetY: number): string | undefined {
    const [px, py] = this.#toPixels(offsetX, offsetY)
    let best: { name: string; d: number } | undefined
    for (const mark of this.#marks) {
      const [mx, my] = this.#toCanvas(mark.x, mark.y)
      const d = Math.hypot(mx - px, my - py)
      if (d <= HIT_PX && (best === undefined || d < best.d)) {
        best = { name: mark.name, d }
      }
    }
    return best?.name
  }
}

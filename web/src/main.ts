/**
 * The dashboard: the fleet view at `#/`, a robot's view at
 * `#/robots/{name}`. Every view reads the HTTP API (api.ts); with access
 * control on it asks for a token first.
 */
import { setToken, Unauthorized } from './api.ts'
import { FleetView } from './fleet.ts'
import { RobotView } from './robot.ts'

/**
 * How often the fleet view reads the robot list again, in ms: positions
 * come from the live feed, the list adds event counts.
 */
const REFRESH_MS = 10_000

const views = {
  token: document.querySelector<HTMLElement>('#token-view')!,
  fleet: document.querySelector<HTMLElement>('#fleet-view')!,
  robot: document.querySelector<HTMLElement>('#robot-view')!,
}
const status = document.querySelector<HTMLElement>('#status')!

function show(view: keyof typeof views) {
  for (const [name, element] of Object.entries(views)) {
    element.hidden = name !== view
  }
}

const openRobot = (name: string) => {
  location.hash = `#/robots/${encodeURIComponent(name)}`
}
const fleet = new FleetView(openRobot)
const robot = new RobotView()

/**
 * Runs a view's work: a 401 shows the token form (and says `false`: stop),
 * another failure shows in the status line (and the work is tried again).
 */
async function guarded(work: () => Promise<void>): Promise<boolean> {
  try {
    await work()
    status.textContent = ''
  } catch (error) {
    if (error instanceof Unauthorized) {
      show('token')
      return false
    }
    status.textContent = (error as Error).message
  }
  return true
}

let timer: ReturnType<typeof setTimeout> | undefined
/** Bumped by each route: a refresh of an earlier one schedules no more. */
let generation = 0

async function route() {
  clearTimeout(timer)
  const current = ++generation
  const match = /^#\/robots\/(.+)$/.exec(location.hash)
  if (match !== null) {
    fleet.stop()
    show('robot')
    await guarded(() => robot.open(decodeURIComponent(match[1]!)))
    return
  }
  robot.stop()
  show('fleet')
  const tick = async () => {
    if ((await guarded(() => fleet.refresh())) && current === generation) {
      timer = setTimeout(tick, REFRESH_MS)
    }
  }
  await tick()
}

document.querySelector('#token-form')!.addEventListener('submit', (e) => {
  e.preventDefault()
  setToken(document.querySelector<HTMLInputElement>('#token')!.value.trim())
  void route()
})
window.addEventListener('hashchange', () => void route())
void route()

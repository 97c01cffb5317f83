/**
 * The HTTP API as the dashboard uses it: every request carries the token,
 * when there is one, as `Authorization: Bearer`. A token given in the page's
 * URL (`/?access_token=…`, RFC 6750 §2.3) is taken once, kept for this tab
 * (sessionStorage) and removed from the address bar.
 */

/** A robot as `GET /api/robots` lists it. */
export interface Robot {
  readonly name: string
  readonly odometer: number | null
  readonly last_x: number
  readonly last_y: number
  readonly first_timestamp: number
  readonly last_timestamp: number
  readonly event_count: number
  readonly updated_time: string
}

/** An event as `GET /api/robots/{robot}/events` gives it. */
export interface Event {
  readonly timestamp: number
  readonly x: number
  readonly y: number
}

/** The server answered 401: a (valid) token is needed. */
export class Unauthorized extends Error {}

const KEY = 'fleet-telemetry-token'

/** The token from the page's URL or from this tab's storage. */
function startingToken(): string | undefined {
  const url = new URL(location.href)
  const fromUrl = url.searchParams.get('access_token')
  if (fromUrl !== null) {
    sessionStorage.setItem(KEY, fromUrl)
    url.searchParams.delete('access_token')
    history.replaceState(null, '', url)
  }
  return sessionStorage.getItem(KEY) ?? undefined
}

let token = startingToken()

/** Uses `value` as the token from now on. */
export function setToken(value: string): void {
  token = value
  sessionStorage.setItem(KEY, value)
}

/** A GET of the API; throws {@link Unauthorized} on 401 and an Error on any other failure. */
export async function get(path: string, accept?: string): Promise<Response> {
  const headers: Record<string, string> = {}
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (accept !== undefined) headers.accept = accept
  const response = await fetch(path, { headers })
  if (response.status === 401) throw new Unauthorized()
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as {
      message?: string
    }
    throw new Error(body.message ?? `${path}: ${response.status}`)
  }
  return response
}

/** A GET of the API, as JSON. */
export async function getJson<T>(path: string): Promise<T> {
  return (await (await get(path)).json()) as T
}

/** The path of the next page, from a `Link: <…>; rel="next"` header. */
export function nextPage(response: Response): string | undefined {
  const link = response.headers.get('link')
  return link?.match(/<([^>]+)>;\s*rel="next"/)?.[1]
}

/** The path of a robot's route: `/api/robots/{name}{rest}`. */
export function robotPath(name: string, rest = ''): string {
  return `/api/robots/${encodeURIComponent(name)}${rest}`
}

/** A position of the live feed (`GET /api/live`). */
export interface Position {
  readonly robot: string
  readonly x: number
  readonly y: number
  readonly timestamp: number
  readonly odometer: number | null
}

/**
 * Follows the live feed (the whole fleet, or `robots`): `onPosition` gets
 * each `snapshot` and `position`. The browser's EventSource reconnects by
 * itself; it cannot send a header, so the token goes as `access_token`.
 * Returns what stops it.
 */
export function follow(
  robots: readonly string[] | undefined,
  onPosition: (position: Position) => void,
): () => void {
  const params = new URLSearchParams()
  for (const robot of robots ?? []) params.append('robot', robot)
  if (token !== undefined) params.set('access_token', token)
  const query = params.size === 0 ? '' : `?${params}`
  const source = new EventSource(`/api/live${query}`)
  const take = (e: MessageEvent<string>) =>
    onPosition(JSON.parse(e.data) as Position)
  source.addEventListener('snapshot', take)
  source.addEventListener('position', take)
  return () => source.close()
}

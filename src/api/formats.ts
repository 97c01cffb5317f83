/**
 * The formats a robot's events can be read in: a JSON array (default),
 * NDJSON and CSV, chosen by the `Accept` header. Each is written page by
 * page, so a response of any length holds only one page in memory.
 */
import type { StoredEvent } from '../store/store.ts'

/** How one format writes a stream of events. */
export interface EventFormat {
  readonly contentType: string
  /** Text before the first event. */
  readonly head: string
  /** Text after the last event. */
  readonly tail: string
  /** One page of events; `first` is true for the first page. */
  page(events: readonly StoredEvent[], first: boolean): string
}

function jsonObjects(robot: string, separator: string) {
  const prefix = `{"robot":${JSON.stringify(robot)},"x":`
  return (events: readonly StoredEvent[]) => {
    let out = ''
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!
      // JS renders every finite number as valid JSON.
      out += `${i > 0 ? separator : ''}${prefix}${e.x},"y":${e.y},"timestamp":${e.timestamp}}`
    }
    return out
  }
}

function json(robot: string): EventFormat {
  const objects = jsonObjects(robot, ',')
  return {
    contentType: 'application/json; charset=utf-8',
    head: '[',
    tail: ']',
    page: (events, first) => (first ? '' : ',') + objects(events),
  }
}

function ndjson(robot: string): EventFormat {
  const objects = jsonObjects(robot, '\n')
  return {
    contentType: 'application/x-ndjson; charset=utf-8',
    head: '',
    tail: '',
    page: (events) => objects(events) + '\n',
  }
}

/** Quotes a CSV field when it needs it (RFC 4180 §2). */
function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

function csv(robot: string): EventFormat {
  const name = csvField(robot)
  return {
    contentType: 'text/csv; charset=utf-8',
    head: 'robot,x,y,timestamp\r\n',
    tail: '',
    page: (events) => {
      let out = ''
      for (const e of events) out += `${name},${e.x},${e.y},${e.timestamp}\r\n`
      return out
    },
  }
}

const FORMATS = {
  'application/json': json,
  'application/x-ndjson': ndjson,
  'text/csv': csv,
} as const

/**
 * Picks the format for an `Accept` header: the first media type it lists
 * that we write, JSON when none (quality values are not weighed).
 */
export function chooseEventFormat(
  accept: string | undefined,
  robot: string,
): EventFormat {
  for (const part of (accept ?? '').split(',')) {
    const type = part.split(';', 1)[0]!.trim().toLowerCase()
    // Own keys only: `Accept: constructor` must not reach Object.prototype.
    if (Object.hasOwn(FORMATS, type)) {
      return FORMATS[type as keyof typeof FORMATS](robot)
    }
  }
  return json(robot)
}

/** Writes every page of `pages` in `format`, as text chunks. */
export async function* renderEvents(
  pages: AsyncIterable<readonly StoredEvent[]>,
  format: EventFormat,
): AsyncGenerator<string> {
  let first = true
  let out = format.head
  for await (const page of pages) {
    out += format.page(page, first)
    first = false
    yield out
    out = ''
  }
  out += format.tail
  if (out !== '') yield out
}

/**
 * Query parameters of the HTTP API, parsed once at the edge. Every parser
 * takes `unknown` and returns typed values or throws `INVALID_QUERY`.
 */
import { parseTimestamp, robotNameProblem } from '../domain/event.ts'
import { TelemetryError } from '../errors.ts'
import type { TimeRange } from '../store/store.ts'

/** Largest `limit` of `GET /api/robots`. */
export const MAX_ROBOTS_LIMIT = 10_000
/** Largest `limit` of `GET /api/robots/{robot}/events`. */
export const MAX_EVENTS_LIMIT = 100_000
/** Most `robot` parameters of one `GET /api/live`. */
export const MAX_LIVE_ROBOTS = 1000

type Query = Record<string, unknown>

function invalid(message: string): TelemetryError {
  return new TelemetryError('INVALID_QUERY', { message })
}

/** One value of a parameter; absent or empty is `undefined`, repeated is an error. */
function single(query: Query, name: string): string | undefined {
  const value = query[name]
  if (value === undefined || value === '') return undefined
  if (typeof value !== 'string') throw invalid(`${name} must be given once`)
  return value
}

function timestampParam(query: Query, name: string): number | undefined {
  const text = single(query, name)
  if (text === undefined) return undefined
  const value = parseTimestamp(text, name)
  if (typeof value === 'string') throw invalid(value)
  return value
}

function limitParam(query: Query, max: number): number | undefined {
  const text = single(query, 'limit')
  if (text === undefined) return undefined
  const value = /^\d{1,9}$/.test(text) ? Number(text) : NaN
  if (!(value >= 1 && value <= max)) {
    throw invalid(`limit must be an integer from 1 to ${max}`)
  }
  return value
}

/** An inclusive interval whose start is at most its end. */
export interface TimeQuery extends TimeRange {
  /** `start_time` as given, after the swap; `null` when absent. */
  readonly startTime: number | null
  /** `end_time` as given, after the swap; `null` when absent. */
  readonly endTime: number | null
}

/**
 * Parses `start_time` and `end_time`: both optional and inclusive; a start
 * after the end is swapped, as the original system did.
 */
export function parseTimeQuery(query: unknown): TimeQuery {
  const q = (query ?? {}) as Query
  let start = timestampParam(q, 'start_time')
  let end = timestampParam(q, 'end_time')
  if (start !== undefined && end !== undefined && start > end) {
    ;[start, end] = [end, start]
  }
  return { start, end, startTime: start ?? null, endTime: end ?? null }
}

/** Parameters of `GET /api/robots/{robot}/events`. */
export interface EventsQuery extends TimeQuery {
  readonly limit?: number
  /** Only events after this timestamp (a page's last). */
  readonly after?: number
}

/** Parses the time interval plus `limit` and `after` (a timestamp). */
export function parseEventsQuery(query: unknown): EventsQuery {
  const q = (query ?? {}) as Query
  return {
    ...parseTimeQuery(q),
    limit: limitParam(q, MAX_EVENTS_LIMIT),
    after: timestampParam(q, 'after'),
  }
}

/** Parameters of `GET /api/robots`. */
export interface RobotsQuery {
  readonly limit?: number
  /** Only robots whose name sorts after this one. */
  readonly after?: string
}

/** Parses `limit` and `after` (a robot name). */
export function parseRobotsQuery(query: unknown): RobotsQuery {
  const q = (query ?? {}) as Query
  return { limit: limitParam(q, MAX_ROBOTS_LIMIT), after: single(q, 'after') }
}

/** Parameters of `GET /api/live`. */
export interface LiveQuery {
  /** The robots asked for, each once; absent for the whole fleet. */
  readonly robots?: string[]
}

/**
 * Parses `robot`, repeatable: names a robot could have (a stream on a name
 * that ingest refuses would wait forever), at most {@link MAX_LIVE_ROBOTS}.
 */
export function parseLiveQuery(query: unknown): LiveQuery {
  const value = ((query ?? {}) as Query).robot
  if (value === undefined) return {}
  const names = typeof value === 'string' ? [value] : (value as unknown[])
  const robots = [...new Set(names.map(String))]
  if (robots.length > MAX_LIVE_ROBOTS) {
    throw invalid(`robot may be given at most ${MAX_LIVE_ROBOTS} times`)
  }
  for (const name of robots) {
    const problem = robotNameProblem(name)
    if (problem !== undefined) {
      throw invalid(
        `robot ${JSON.stringify(name)} is no robot name: ${problem.replace('robot_name ', '')}`,
      )
    }
  }
  return { robots }
}

/**
 * The `Last-Event-ID` header of a live stream: the timestamp of the last
 * event the client has, for a stream of exactly one robot. Absent or
 * empty is `undefined`.
 */
export function parseLastEventId(
  header: string | string[] | undefined,
  robots: readonly string[] | undefined,
): number | undefined {
  if (header === undefined || header === '') return undefined
  const bad = (message: string) =>
    new TelemetryError('BAD_REQUEST', { message })
  if (typeof header !== 'string') throw bad('Last-Event-ID must be given once')
  if (robots?.length !== 1) {
    throw bad('Last-Event-ID needs a stream of exactly one robot')
  }
  const value = parseTimestamp(header, 'Last-Event-ID')
  if (typeof value === 'string') throw bad(value)
  return value
}

/** The profiles of an MCAP export (robotics/messages.ts, `PROFILES`). */
export const MCAP_PROFILES = ['json', 'ros2'] as const
export type McapProfileName = (typeof MCAP_PROFILES)[number]

/** Parameters of `GET /api/robots/{robot}/events.mcap`. */
export interface McapQuery extends TimeQuery {
  readonly profile: McapProfileName
}

/** Parses the time interval and `profile`: `json` when absent or empty. */
export function parseMcapQuery(query: unknown): McapQuery {
  const q = (query ?? {}) as Query
  const time = parseTimeQuery(q)
  const profile = single(q, 'profile') ?? 'json'
  if (!(MCAP_PROFILES as readonly string[]).includes(profile)) {
    throw invalid(`profile must be ${MCAP_PROFILES.join(' or ')}`)
  }
  return { ...time, profile: profile as McapProfileName }
}

/** Parameters of `GET /api/export.mcap`. */
export interface ExportQuery extends McapQuery {
  /** The robots asked for, each once, in the order given; absent for all. */
  readonly robots?: string[]
}

/** {@link parseMcapQuery}, then `robot` as {@link parseLiveQuery} reads it. */
export function parseExportQuery(query: unknown): ExportQuery {
  const q = (query ?? {}) as Query
  return { ...parseMcapQuery(q), robots: parseLiveQuery(q).robots }
}

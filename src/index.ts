/**
 * Fleet telemetry server: robots stream location events over a WebSocket,
 * the server stores them durably and answers an HTTP API about them.
 *
 * @module
 */

// Starting a server
export { startServer } from './server.ts'
export { openBackend, openStore } from './store/open.ts'
export type { TelemetryServer, ServerOptions } from './server.ts'
export { DEFAULT_CONFIG, loadConfig, ConfigError } from './config.ts'
export type { Config, LogLevel } from './config.ts'

// The domain: events and the rules of ingest
export { parseEventLine } from './domain/event.ts'
export type { TelemetryEvent } from './domain/event.ts'
export { decide } from './domain/rules.ts'
export type { Decision, Outcome, RobotState } from './domain/rules.ts'

// Storage
export type { Store, Robot, EventPage, TimeRange } from './store/store.ts'

// Errors
export { ERROR_CATALOG, TelemetryError } from './errors.ts'
export type { ErrorCode } from './errors.ts'

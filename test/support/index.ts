/**
 * @module
 * The test kit: everything an end-to-end suite (and the benchmark) needs
 * to start the real server and talk to it, written once. Nothing here
 * imports from `src/`: the server is reached through `dist/src/cli.js`, the
 * WebSocket protocol and the HTTP API only.
 */

// Processes: any child, the real server, temporary folders.
export {
  childPids,
  killAll,
  runJsonProcess,
  runProcess,
  startNode,
  startProcess,
} from './processes.ts'
export type {
  Exit,
  Finished,
  JsonProcessOptions,
  ProcessOptions,
  StartedProcess,
  Stopped,
} from './processes.ts'
export {
  CLI_PATH,
  SEND_PATH,
  runCli,
  runCliWithInput,
  startListening,
  startServer,
} from './server-process.ts'
export type {
  ListeningProcess,
  ListenOptions,
  ServerAccess,
  ServerProcess,
  StartServerOptions,
} from './server-process.ts'
export { makeTempDir, removeTempDir } from './temp-dirs.ts'
export { accessFile, newToken, tokenEntry, writeTokens } from './tokens.ts'
export type { TokenSpec, TokensFile } from './tokens.ts'
export { httpsRequest, makeCertificate } from './tls.ts'
export {
  CHROMIUM_PATH,
  browserSkip,
  launchBrowser,
  pageErrors,
} from './browser.ts'
export type { Certificate, HttpsResponse } from './tls.ts'
export { cpuSeconds, memory, resetPeakRss } from './proc.ts'

// Seeded randomness.
export {
  MAX_SEED,
  Random,
  SEED_VARIABLE,
  parseSeed,
  seedNote,
  testSeed,
} from './random.ts'

// The ingest WebSocket.
export { IngestClient, refusedUpgrade, repeatLine } from './ingest-client.ts'
export type {
  Closed,
  ConnectOptions,
  Outgoing,
  RefusedUpgrade,
  SentFrame,
} from './ingest-client.ts'

// A robot that resends until its event is in (failover tests, bench).
export { ResendingRobot, longestSilence } from './resending-robot.ts'
export type { Acknowledged } from './resending-robot.ts'

// The live feed.
export { LiveClient } from './live-client.ts'
export type {
  LiveClientOptions,
  LiveEnd,
  LiveEvent,
  LivePosition,
} from './live-client.ts'

// The Foxglove endpoint.
export { FoxgloveViewer } from './foxglove-client.ts'
export type { FoxgloveMessage, FoxgloveStatus } from './foxglove-client.ts'

// The oracle of ingest and odometers.
export {
  MAX_TIMESTAMP,
  ODOMETER_TOLERANCE,
  RobotModel,
  assertOdometer,
  byCodePoint,
  expectedOdometer,
  odometerMatches,
  replyKind,
} from './oracle.ts'
export type { ApiEvent, Outcome, ReplyKind } from './oracle.ts'

// The HTTP API, its error bodies, raw HTTP and /metrics.
export {
  assertIsoTime,
  getJson,
  getRobot,
  http,
  readEvents,
  readOdometer,
  request,
  robotPath,
  toHeaders,
  withoutTimes,
} from './http-api.ts'
export type {
  HttpOptions,
  Origin,
  RouteQuery,
  TextResponse,
} from './http-api.ts'
export {
  CODE_STATUS,
  ERROR_CODES,
  assertCatalogError,
  assertError,
  assertErrorBody,
  assertErrorResponse,
  assertNoLeak,
  looksLikeLeak,
} from './error-bodies.ts'
export type { ErrorCode } from './error-bodies.ts'
export { rawExchange } from './raw-http.ts'
export type { RawResponse } from './raw-http.ts'
export { metricValue, scrapeMetrics } from './metrics.ts'
export type { Scrape } from './metrics.ts'

// MCAP files of the export, read back with @mcap/core.
export {
  downloadMcap,
  jsonMessage,
  mcapRecords,
  openMcap,
  readMcapMessages,
  recordsOf,
} from './mcap.ts'
export type { McapDownload, McapMessage } from './mcap.ts'

// Waiting, and showing generated inputs.
export { SAFETY_TIMEOUT_MS, mapLimit, waitFor, withTimeout } from './wait.ts'
export type { WaitOptions } from './wait.ts'
export { show } from './show.ts'

// A pg_auto_failover formation (monitor, primary, secondary).
export { formationSkip, startFormation } from './formation.ts'
export type {
  Formation,
  FormationNode,
  FormationOptions,
  NodeState,
} from './formation.ts'

// InfluxDB, the bench's peer.
export {
  INFLUXD_INSTALL,
  INFLUXD_PATH,
  influxdbSkip,
  startInfluxd,
  treeBytes,
} from './influxdb.ts'
export type { Influxd, InfluxdOptions } from './influxdb.ts'
export { freePort } from './ports.ts'

// The PostgreSQL test database.
export {
  TEST_POSTGRES_URL,
  dropSchemas,
  freshSchema,
  holdNewRobot,
  postgresSkip,
} from './postgres.ts'

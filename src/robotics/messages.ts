/**
 * What robotics tools are sent: the channels, schemas and messages shared
 * by the live Foxglove endpoint (foxglove.ts) and the MCAP export
 * (mcap.ts), written once here.
 *
 * Per robot, `/robots/<name>/pose` (`foxglove.PoseInFrame`, frame
 * `fleet`, position x,y, z 0, identity orientation) and
 * `/robots/<name>/odometer` (the robot's lifetime odometer at that event);
 * live only, `/fleet/scene` (`foxglove.SceneUpdate`, one labelled sphere
 * per robot). An event's timestamp is read as milliseconds since the epoch:
 * it is the message's log time and its header time.
 *
 * Two profiles: `json` (JSON messages with the JSON schemas of
 * `@foxglove/schemas`) and `ros2` (CDR messages of ROS 2 message types,
 * `geometry_msgs/msg/PoseStamped` and `std_msgs/msg/Float64`, for
 * `ros2 bag`).
 */
import { parse as parseRosMessage } from '@foxglove/rosmsg'
import { MessageWriter } from '@foxglove/rosmsg2-serialization'
import { PoseInFrame, SceneUpdate } from '@foxglove/schemas/jsonschema.js'
import type { StoredEvent } from '../store/store.ts'

/** The frame every position is in. */
export const FRAME_ID = 'fleet'

/** The topic of the live fleet scene. */
export const SCENE_TOPIC = '/fleet/scene'

/** The topics of one robot. */
export function poseTopic(robot: string): string {
  return `/robots/${robot}/pose`
}
export function odometerTopic(robot: string): string {
  return `/robots/${robot}/odometer`
}

/**
 * A channel's schema: its name, the encoding of the schema and of the
 * messages, and the schema's text (kept as one string, shared by every
 * channel that uses it).
 */
export interface ChannelSchema {
  readonly name: string
  readonly schemaEncoding: 'jsonschema' | 'ros2msg'
  readonly messageEncoding: 'json' | 'cdr'
  readonly text: string
}

/** The plain JSON schema of the odometer channel. */
const ODOMETER_JSON_SCHEMA = {
  title: 'fleet_telemetry.Odometer',
  description:
    "A robot's lifetime odometer: the distance it travelled from its first event to this one, summed over consecutive events, in the unit of x and y",
  type: 'object',
  properties: {
    timestamp: {
      type: 'object',
      title: 'time',
      properties: {
        sec: { type: 'integer', minimum: 0 },
        nsec: { type: 'integer', minimum: 0, maximum: 999_999_999 },
      },
      description: "The event's timestamp",
    },
    robot: { type: 'string', description: 'The robot name, case-sensitive' },
    odometer: {
      type: ['number', 'null'],
      minimum: 0,
      description:
        'Lifetime odometer; null when it exceeds the largest double (about 1.8e308), as the HTTP API writes it',
    },
  },
  required: ['timestamp', 'robot', 'odometer'],
}

/**
 * A JSON schema as sent: without its annotations (`description`,
 * `$comment`), which validate nothing, and without white space. Every
 * channel carries its schema, so this halves what a client is sent per
 * robot when it connects (PoseInFrame: 1,323 bytes to 748).
 */
export function compactSchema(schema: unknown): string {
  return JSON.stringify(schema, (key, value: unknown) =>
    key === 'description' || key === '$comment' ? undefined : value,
  )
}

export const POSE_SCHEMA: ChannelSchema = {
  name: 'foxglove.PoseInFrame',
  schemaEncoding: 'jsonschema',
  messageEncoding: 'json',
  text: compactSchema(PoseInFrame),
}
export const ODOMETER_SCHEMA: ChannelSchema = {
  name: 'fleet_telemetry.Odometer',
  schemaEncoding: 'jsonschema',
  messageEncoding: 'json',
  text: compactSchema(ODOMETER_JSON_SCHEMA),
}
export const SCENE_SCHEMA: ChannelSchema = {
  name: 'foxglove.SceneUpdate',
  schemaEncoding: 'jsonschema',
  messageEncoding: 'json',
  text: compactSchema(SceneUpdate),
}

/**
 * ROS 2's `geometry_msgs/msg/PoseStamped` with its dependencies, in the
 * concatenated form `ros2 bag` writes into MCAP schemas.
 */
const POSE_STAMPED_MSG = `std_msgs/Header header
geometry_msgs/Pose pose

================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id

================================================================================
MSG: geometry_msgs/Pose
geometry_msgs/Point position
geometry_msgs/Quaternion orientation

================================================================================
MSG: geometry_msgs/Point
float64 x
float64 y
float64 z

================================================================================
MSG: geometry_msgs/Quaternion
float64 x 0
float64 y 0
float64 z 0
float64 w 1
`

const FLOAT64_MSG = `float64 data
`

export const ROS2_POSE_SCHEMA: ChannelSchema = {
  name: 'geometry_msgs/msg/PoseStamped',
  schemaEncoding: 'ros2msg',
  messageEncoding: 'cdr',
  text: POSE_STAMPED_MSG,
}
export const ROS2_ODOMETER_SCHEMA: ChannelSchema = {
  name: 'std_msgs/msg/Float64',
  schemaEncoding: 'ros2msg',
  messageEncoding: 'cdr',
  text: FLOAT64_MSG,
}

/** The schemas and message writers of one profile. */
export interface Profile {
  readonly name: 'json' | 'ros2'
  readonly pose: ChannelSchema
  readonly odometer: ChannelSchema
  /** The pose message of an event. */
  poseMessage(event: StoredEvent): Uint8Array
  /** The odometer message of an event. */
  odometerMessage(event: StoredEvent): Uint8Array
  /**
   * The largest timestamp (milliseconds) the profile's times can carry:
   * a uint64 of nanoseconds, and for ROS 2 an int32 of seconds (2038).
   */
  readonly maxTimestamp: number
}

/** The largest uint64, the largest log time of MCAP and Foxglove. */
const MAX_UINT64 = (1n << 64n) - 1n

/** The largest timestamp whose nanoseconds fit a uint64 (year 2554). */
export const MAX_LOG_TIME_MS = Number(MAX_UINT64 / 1_000_000n)

/**
 * An event's timestamp as a log time in nanoseconds; past
 * {@link MAX_LOG_TIME_MS} the largest log time (only live messages get
 * there: exports end at the profile's {@link Profile.maxTimestamp}).
 */
export function logTime(timestamp: number): bigint {
  const ns = BigInt(timestamp) * 1_000_000n
  return ns > MAX_UINT64 ? MAX_UINT64 : ns
}

/** `{"sec":…,"nsec":…}` of a timestamp in milliseconds. */
function timeJson(timestamp: number): string {
  const ms = timestamp % 1000
  return `{"sec":${(timestamp - ms) / 1000},"nsec":${ms * 1_000_000}}`
}

/**
 * UTF-8 bytes of a message's text. Buffer.from, not TextEncoder: 0.2 µs
 * against 1 to 1.5 µs for a pose's 150 characters, measured on Node 20
 * (two a event: most of an MCAP export's time went there).
 */
const utf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8')

/** The `foxglove.PoseInFrame` of an event, as JSON text. */
export function poseJson(event: StoredEvent): string {
  return `{"timestamp":${timeJson(event.timestamp)},"frame_id":"${FRAME_ID}","pose":{"position":{"x":${event.x},"y":${event.y},"z":0},"orientation":{"x":0,"y":0,"z":0,"w":1}}}`
}

/** The odometer message of an event, as JSON text. */
export function odometerJson(event: StoredEvent): string {
  // JSON has no Infinity: a distance past the largest double is null.
  const odometer = Number.isFinite(event.odometer) ? event.odometer : null
  return `{"timestamp":${timeJson(event.timestamp)},"robot":${JSON.stringify(event.robot)},"odometer":${odometer}}`
}

/** A robot's marker in the scene: a sphere with its name above it. */
function sceneEntity(event: StoredEvent): string {
  const time = timeJson(event.timestamp)
  const position = `{"x":${event.x},"y":${event.y},"z":0}`
  const label = `{"x":${event.x},"y":${event.y},"z":1}`
  const identity = '{"x":0,"y":0,"z":0,"w":1}'
  return (
    `{"timestamp":${time},"frame_id":"${FRAME_ID}","id":${JSON.stringify(event.robot)},` +
    `"lifetime":{"sec":0,"nsec":0},"frame_locked":false,` +
    `"metadata":[{"key":"odometer","value":"${event.odometer}"}],` +
    `"arrows":[],"cubes":[],` +
    `"spheres":[{"pose":{"position":${position},"orientation":${identity}},"size":{"x":1,"y":1,"z":1},"color":{"r":0.18,"g":0.49,"b":0.86,"a":1}}],` +
    `"cylinders":[],"lines":[],"triangles":[],` +
    `"texts":[{"pose":{"position":${label},"orientation":${identity}},"billboard":true,"font_size":14,"scale_invariant":true,"color":{"r":1,"g":1,"b":1,"a":1},"text":${JSON.stringify(event.robot)}}],` +
    `"models":[]}`
  )
}

/**
 * A `foxglove.SceneUpdate` with one entity per event (the latest of each
 * robot), as JSON text. An entity replaces the one of the same id, so an
 * update that names only the robots that moved leaves the others in place.
 */
export function sceneJson(latest: Iterable<StoredEvent>): string {
  const entities: string[] = []
  for (const event of latest) entities.push(sceneEntity(event))
  return `{"deletions":[],"entities":[${entities.join(',')}]}`
}

export const JSON_PROFILE: Profile = {
  name: 'json',
  pose: POSE_SCHEMA,
  odometer: ODOMETER_SCHEMA,
  poseMessage: (event) => utf8(poseJson(event)),
  odometerMessage: (event) => utf8(odometerJson(event)),
  maxTimestamp: MAX_LOG_TIME_MS,
}

const poseStampedWriter = new MessageWriter(
  parseRosMessage(POSE_STAMPED_MSG, { ros2: true }),
)
const float64Writer = new MessageWriter(
  parseRosMessage(FLOAT64_MSG, { ros2: true }),
)

/** The largest timestamp whose seconds fit ROS 2's int32 (2038-01-19). */
export const MAX_ROS2_TIMESTAMP_MS = 2 ** 31 * 1000 - 1

export const ROS2_PROFILE: Profile = {
  name: 'ros2',
  pose: ROS2_POSE_SCHEMA,
  odometer: ROS2_ODOMETER_SCHEMA,
  poseMessage(event) {
    const ms = event.timestamp % 1000
    return poseStampedWriter.writeMessage({
      header: {
        stamp: { sec: (event.timestamp - ms) / 1000, nanosec: ms * 1_000_000 },
        frame_id: FRAME_ID,
      },
      pose: {
        position: { x: event.x, y: event.y, z: 0 },
        orientation: { x: 0, y: 0, z: 0, w: 1 },
      },
    })
  },
  odometerMessage: (event) =>
    float64Writer.writeMessage({ data: event.odometer }),
  maxTimestamp: MAX_ROS2_TIMESTAMP_MS,
}

/** The profiles by the name of `?profile=`. */
export const PROFILES: Readonly<Record<Profile['name'], Profile>> = {
  json: JSON_PROFILE,
  ros2: ROS2_PROFILE,
}

/**
 * The PostgreSQL schema, as numbered migrations. Migration N is applied once,
 * in order, and recorded in `schema_migrations`; a published migration is
 * never edited, only followed by a new one.
 *
 * Every table is keyed by the robot's name first: every query names one
 * robot, so the name can be the distribution column of a sharded PostgreSQL
 * (Citus: `SELECT create_distributed_table('events', 'robot')` and the same
 * for `robots`, colocated), and each robot's rows stay on one shard.
 *
 * A migration may have a step in code besides its SQL (`MIGRATION_STEPS`),
 * run in the same transaction right after it.
 */
import type postgres from 'postgres'
import { packRecent } from './postgres-blocks.ts'

type Tx = postgres.TransactionSql<Record<string, never>>

export const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1: robots with their latest state, and events with their running odometer.
  `
  CREATE TABLE robots (
    -- "C": names sort by code point, as the API promises.
    name           text COLLATE "C" PRIMARY KEY,
    first_ts       bigint NOT NULL,
    last_ts        bigint NOT NULL,
    last_x         double precision NOT NULL,
    last_y         double precision NOT NULL,
    -- The running odometer of the latest event, as total + carry (rules.ts).
    odometer       double precision NOT NULL,
    odometer_carry double precision NOT NULL,
    event_count    bigint NOT NULL,
    created_ms     bigint NOT NULL,
    updated_ms     bigint NOT NULL
  );
  CREATE TABLE events (
    robot text COLLATE "C" NOT NULL,
    ts    bigint NOT NULL,
    x     double precision NOT NULL,
    y     double precision NOT NULL,
    -- The running odometer at this event: an interval's distance is the
    -- difference of two rows, whatever lies between them.
    odo   double precision NOT NULL,
    carry double precision NOT NULL,
    PRIMARY KEY (robot, ts)
  );
  `,
  // 2: every batch updates its robots' rows. Half-empty pages let an update
  // stay on its page (HOT: the name, the only indexed column, never
  // changes), so updates write no index entries and leave less to vacuum.
  `ALTER TABLE robots SET (fillfactor = 50);`,
  // 3: the number of robots with a stored event, kept by every batch that
  // stores a robot's first event, so that counting them reads one row:
  // `count(*)` on 1,000,000 robots took 130-260 ms (issue 10).
  `
  CREATE TABLE robot_count (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    robots bigint NOT NULL
  );
  INSERT INTO robot_count (robots)
    SELECT count(*) FROM robots WHERE event_count > 0;
  `,
  // 4: the compressed layout (issue 14). A robot's events go first to
  // `recent`, one row each (the table `events` was until now), and are
  // packed by the batch that brings a robot's recent events to a block's
  // worth into one row of `blocks`: 64 events in a `bytea` of the block
  // codec (src/store/block-codec.ts), with the running odometer at the
  // first. 64, not SQLite's 256: rows come into `recent` and leave it as
  // fast as events arrive, and the fewer it holds the less space that
  // churn takes (docs/storage.md has the measure). `robots.packed` counts the robot's events ever packed, so its
  // recent ones number `event_count - packed`.
  //
  // `blocks` is partitioned by range of `last_ts`, `layout.partition_ms`
  // wide (a day of milliseconds), so a retention pass drops whole
  // partitions, each holding only events older than its upper bound.
  // Partitions are made when a block first needs one
  // (postgres-blocks.ts). A database's events of the older layout stay in
  // `recent` until migration 5 packs them.
  `
  ALTER TABLE events RENAME TO recent;
  ALTER TABLE recent RENAME CONSTRAINT events_pkey TO recent_pkey;
  ALTER TABLE robots ADD COLUMN packed bigint NOT NULL DEFAULT 0;
  CREATE TABLE layout (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    partition_ms bigint NOT NULL,
    block_events integer NOT NULL
  );
  INSERT INTO layout (partition_ms, block_events) VALUES (86400000, 64);
  CREATE TABLE blocks (
    robot     text COLLATE "C" NOT NULL,
    first_ts  bigint NOT NULL,
    last_ts   bigint NOT NULL,
    count     integer NOT NULL,
    -- The running odometer at the first event (rules.ts, RunningTotal).
    odo       double precision NOT NULL,
    odo_carry double precision NOT NULL,
    data      bytea NOT NULL
  ) PARTITION BY RANGE (last_ts);
  -- Already packed: never worth compressing again.
  ALTER TABLE blocks ALTER COLUMN data SET STORAGE EXTERNAL;
  CREATE INDEX blocks_by_robot ON blocks (robot, last_ts);
  -- Rows leave recent as fast as they come: vacuum it often, so that
  -- their space is used again (the store also runs VACUUM itself).
  -- Nor may a VACUUM cut its emptied last pages: that takes an exclusive
  -- lock, which stalls every batch, for pages that are soon needed again.
  ALTER TABLE recent SET (autovacuum_vacuum_scale_factor = 0.02,
                          autovacuum_vacuum_threshold = 5000,
                          vacuum_truncate = false);
  `,
  // 5: a robot's newest events, until they reach a block end, in chunks of
  // the block codec in its own row (`tail`, postgres-blocks.ts), instead
  // of a row each in `recent`: every event was written to `recent`, read
  // back when packed and deleted, about twice the row work of the layout
  // before migration 4 (ingest fell to 0.63× of it); a batch now appends
  // to the robot row it already locks and updates. The step (postgres-blocks.ts, packRecent)
  // moves what `recent` holds and drops it.
  //
  // From now on no block spans `partition_ms` or more: `block_span` keeps
  // the longest span of the blocks packed before, so that the look-ups of
  // a block by time know how far it may reach.
  `
  ALTER TABLE robots
    ADD COLUMN tail       bytea,
    ADD COLUMN tail_ts    bigint,
    ADD COLUMN tail_odo   double precision NOT NULL DEFAULT 0,
    ADD COLUMN tail_carry double precision NOT NULL DEFAULT 0;
  ALTER TABLE layout ADD COLUMN block_span bigint NOT NULL DEFAULT 0;
  UPDATE layout SET block_span =
    (SELECT coalesce(max(last_ts - first_ts), 0) FROM blocks);
  `,
]

/** Steps in code of the migrations, by version, after their SQL. */
export const MIGRATION_STEPS: ReadonlyMap<number, (tx: Tx) => Promise<void>> =
  new Map([[5, packRecent]])

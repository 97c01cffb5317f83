/**
 * A pg_auto_failover formation for the failover tests and the benchmark: a
 * monitor and two PostgreSQL nodes on free ports of 127.0.0.1, in a
 * temporary folder, each run by a `pg_autoctl … --run` process of the
 * `postgres` user (pg_autoctl refuses to run as root). Debian's packages
 * `postgresql-15-auto-failover` and `pg-auto-failover-cli` provide it;
 * `.ci/run` installs them.
 *
 * @example
 * const formation = await startFormation()
 * await formation.waitFor(['primary', 'secondary'])
 * // --store formation.url
 * await formation.performFailover()
 * await formation.stop()
 */
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
} from 'node:fs'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import {
  runProcess,
  startProcess,
  type ProcessOptions,
  type StartedProcess,
} from './processes.ts'
import { freePort } from './ports.ts'
import { keepTempDir, makeTempDir, removeTempDir } from './temp-dirs.ts'
import { waitFor } from './wait.ts'

const PG_AUTOCTL = '/usr/bin/pg_autoctl'
const PG_BIN = '/usr/lib/postgresql/15/bin'
/**
 * Set (to anything): each pg_autoctl process's output is also written to
 * `<name>.log` in the formation's folder, and the folder is left in place
 * (its path printed): the keepers' and the monitor's logs and the nodes'
 * PostgreSQL logs, to read after a failure.
 */
const KEEP = process.env.TELEMETRY_FORMATION_KEEP !== undefined

const INSTALL =
  'apt-get install -y postgresql-15-auto-failover pg-auto-failover-cli'

/**
 * `false` when pg_auto_failover can run here (or under CI, where it must),
 * else why the tests skip.
 */
export function formationSkip(): string | false {
  if (process.env.CI === 'true') return false
  if (!existsSync(PG_AUTOCTL)) return `no ${PG_AUTOCTL}: ${INSTALL}`
  if (userInfo().uid !== 0) return 'the formation is started as root'
  return false
}

/** A PostgreSQL node of the formation. */
export interface FormationNode {
  readonly name: string
  readonly port: number
  readonly pgdata: string
  /** Its `pg_autoctl create postgres … --run` process (the keeper). */
  keeper: StartedProcess
}

/** A node's state as the monitor shows it. */
export interface NodeState {
  readonly name: string
  readonly port: number
  /** `single`, `primary`, `secondary`, `wait_primary`, `catchingup`, … */
  readonly current: string
  readonly assigned: string
}

export interface Formation {
  /** The formation URI of the nodes' database `postgres`, read-write. */
  readonly url: string
  readonly monitorPort: number
  readonly nodes: readonly FormationNode[]
  /** The nodes' states, from `pg_autoctl show state`. */
  state(): Promise<NodeState[]>
  /**
   * Resolves once the nodes' current and assigned states are `states`, in
   * any order (e.g. `['primary', 'secondary']`).
   */
  waitFor(states: readonly string[], timeoutMs?: number): Promise<NodeState[]>
  /**
   * The node now primary (or `wait_primary`: without its standby), as the
   * monitor both assigned and heard it; waits while a failover is under way.
   */
  primary(timeoutMs?: number): Promise<FormationNode>
  /** `pg_autoctl perform failover`: a planned failover, to its end. */
  performFailover(): Promise<void>
  /** The pid of a node's postmaster (from `postmaster.pid`). */
  postmasterPid(node: FormationNode): number
  /** Stops a node's keeper and its PostgreSQL (SIGTERM: a clean stop). */
  stopNode(node: FormationNode): Promise<void>
  /** SIGKILL to a node's keeper and its PostgreSQL: the machine is gone. */
  killNode(node: FormationNode): Promise<void>
  /** Starts a stopped node's keeper again. */
  startNode(node: FormationNode): void
  /** Stops every process and removes the folder. */
  stop(): Promise<void>
}

/** Options of {@link startFormation}. */
export interface FormationOptions {
  /**
   * 2 (default): a primary and a secondary, with synchronous replication;
   * 1: a lone node (state `single`), to compare with.
   */
  readonly nodes?: 1 | 2
}

/**
 * Starts a monitor and its nodes; resolves once one is primary and one
 * secondary (or the lone node is `single`).
 */
export async function startFormation(
  options: FormationOptions = {},
): Promise<Formation> {
  const nodeCount = options.nodes ?? 2
  const dir = makeTempDir('telemetry-formation-')
  if (KEEP) {
    keepTempDir(dir)
    console.log(`# formation folder (kept): ${dir}`)
  }
  /** With KEEP, copies a process's output to `<name>.log` in `dir`. */
  const logTo = (p: StartedProcess, name: string) => {
    if (!KEEP) return
    const file = join(dir, `${name}.log`)
    for (const stream of [p.child.stdout!, p.child.stderr!]) {
      stream.on('data', (text: string) => appendFileSync(file, text))
    }
  }
  const { uid, gid } = postgresUser()
  chownSync(dir, uid, gid)
  // pg_autoctl keeps its pid files in XDG_RUNTIME_DIR if it exists, else
  // in /tmp/pg_autoctl, shared by every formation (where it was once seen
  // to fail: "Failed to create state directory … File exists").
  for (const sub of ['config', 'data', 'run']) {
    mkdirSync(join(dir, sub), { mode: 0o700 })
    chownSync(join(dir, sub), uid, gid)
  }
  const run: ProcessOptions = {
    cwd: dir,
    uid,
    gid,
    env: {
      PATH: `${PG_BIN}:/usr/bin:/bin`,
      HOME: dir,
      XDG_CONFIG_HOME: join(dir, 'config'),
      XDG_DATA_HOME: join(dir, 'data'),
      XDG_RUNTIME_DIR: join(dir, 'run'),
      LANG: 'C.UTF-8',
    },
    outputLimit: 50_000,
    // A keeper's PostgreSQL goes with it, whatever happens to this process.
    killChildren: true,
  }
  const monitorPort = await freePort()
  const monitorData = join(dir, 'monitor')
  const monitorUri = `postgres://autoctl_node@127.0.0.1:${monitorPort}/pg_auto_failover?sslmode=disable`
  const common = ['--hostname', '127.0.0.1', '--auth', 'trust', '--no-ssl']
  const processes: StartedProcess[] = []
  const monitor = startProcess(
    PG_AUTOCTL,
    [
      'create',
      'monitor',
      '--pgdata',
      monitorData,
      '--pgport',
      String(monitorPort),
      ...common,
      '--run',
    ],
    run,
  )
  processes.push(monitor)
  logTo(monitor, 'monitor')

  const ctl = async (args: readonly string[], timeoutMs = 120_000) => {
    const done = await runProcess(PG_AUTOCTL, args, { ...run, timeoutMs })
    if (done.code !== 0) {
      throw new Error(
        `pg_autoctl ${args.join(' ')}: ${done.code ?? done.signal}\n${done.stderr.slice(-3000)}`,
      )
    }
    return done.stdout
  }

  const nodes: FormationNode[] = []
  const keeperArgs = (node: { name: string; port: number; pgdata: string }) => [
    'create',
    'postgres',
    '--pgdata',
    node.pgdata,
    '--pgport',
    String(node.port),
    '--name',
    node.name,
    '--monitor',
    monitorUri,
    ...common,
    '--run',
  ]
  const startKeeper = (node: FormationNode) => {
    node.keeper = startProcess(PG_AUTOCTL, keeperArgs(node), run)
    processes.push(node.keeper)
    logTo(node.keeper, node.name)
  }

  const formation: Formation = {
    url: '',
    monitorPort,
    nodes,
    async state() {
      const text = await ctl([
        'show',
        'state',
        '--pgdata',
        monitorData,
        '--json',
      ])
      const rows = JSON.parse(text) as Record<string, unknown>[]
      return rows.map((row) => ({
        name: String(row.node_name ?? row.nodename),
        port: Number(row.nodeport ?? row.node_port),
        current: String(row.current_group_state),
        assigned: String(row.assigned_group_state),
      }))
    },
    async waitFor(states, timeoutMs = 180_000) {
      const wanted = [...states].sort().join(',')
      return waitFor(
        async () => {
          let now: NodeState[]
          try {
            now = await formation.state()
          } catch {
            return false
          }
          const stable = now.every((n) => n.current === n.assigned)
          const seen = now
            .map((n) => n.current)
            .sort()
            .join(',')
          return stable && seen === wanted && now
        },
        `the formation in states ${wanted}`,
        { timeoutMs, intervalMs: 500 },
      )
    },
    async primary(timeoutMs = 180_000) {
      // `wait_primary`: a primary whose standby is gone (or not caught up).
      // Its assigned state too: `current` is what a node last reported, and
      // a node killed keeps its last report (`primary`) while the monitor
      // assigns it `demoted` and promotes the other. In the middle of a
      // failover no node is both: wait for the end.
      const writable = ['primary', 'wait_primary']
      let states: NodeState[] = []
      const primary = await waitFor(
        async () => {
          try {
            states = await formation.state()
          } catch {
            return false
          }
          const found = states.filter(
            (s) =>
              writable.includes(s.current) && writable.includes(s.assigned),
          )
          return found.length === 1 && found[0]!
        },
        'a primary',
        { timeoutMs, intervalMs: 500 },
      ).catch((error: unknown) => {
        throw new Error(`no primary: ${JSON.stringify(states)}`, {
          cause: error,
        })
      })
      const node = nodes.find((n) => n.port === primary.port)
      if (node === undefined) throw new Error(`no node ${primary.name}`)
      return node
    },
    async performFailover() {
      await ctl(['perform', 'failover', '--pgdata', monitorData])
    },
    postmasterPid(node) {
      const text = readFileSync(join(node.pgdata, 'postmaster.pid'), 'utf8')
      return Number(text.split('\n')[0])
    },
    async stopNode(node) {
      await node.keeper.stop(60_000)
    },
    async killNode(node) {
      node.keeper.kill('SIGKILL')
      await node.keeper.exited
    },
    startNode(node) {
      startKeeper(node)
    },
    async stop() {
      for (const node of nodes) await node.keeper.stop(60_000)
      await monitor.stop(60_000)
      if (!KEEP) removeTempDir(dir)
    },
  }

  try {
    // The monitor first, then the nodes one at a time: the first becomes
    // the primary (`single`, then `primary` once the second has joined).
    // Its database first, by SQL: a `pg_autoctl show` while `create
    // monitor` is still making its state directory makes the same
    // directory, and one of the two then fails ("Failed to create state
    // directory … File exists"; seen in a run under load).
    await waitFor(
      async () => {
        const sql = postgres(monitorUri, {
          max: 1,
          connect_timeout: 5,
          onnotice: () => {},
        })
        try {
          await sql`SELECT count(*) FROM pgautofailover.node`
          return true
        } catch {
          return false
        } finally {
          await sql.end({ timeout: 1 })
        }
      },
      "the monitor's database answers",
      { timeoutMs: 120_000, intervalMs: 500 },
    )
    await waitFor(
      async () => {
        try {
          await ctl(['show', 'state', '--pgdata', monitorData], 10_000)
          return true
        } catch {
          return false
        }
      },
      'the monitor answers',
      { timeoutMs: 120_000, intervalMs: 500 },
    )
    for (const name of ['node1', 'node2'].slice(0, nodeCount)) {
      const node: FormationNode = {
        name,
        port: await freePort(),
        pgdata: join(dir, name),
        keeper: undefined as unknown as StartedProcess,
      }
      nodes.push(node)
      startKeeper(node)
      await formation.waitFor(
        name === 'node1' ? ['single'] : ['primary', 'secondary'],
      )
    }
  } catch (error) {
    for (const p of processes) p.kill('SIGKILL')
    await Promise.all(processes.map((p) => p.exited))
    removeTempDir(dir)
    // What pg_autoctl said is the only clue of why.
    const said = processes
      .map(
        (p) =>
          `${p.child.spawnargs.slice(1, 3).join(' ')}:\n${p.stderr().slice(-2000)}`,
      )
      .join('\n')
    throw new Error(`${(error as Error).message}\n${said}`, { cause: error })
  }
  const hosts = nodes.map((n) => `127.0.0.1:${n.port}`).join(',')
  return Object.assign(formation, {
    url: `postgres://postgres@${hosts}/postgres?target_session_attrs=read-write`,
  })
}

/** The uid and gid of the `postgres` user, from /etc/passwd. */
function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'))
  if (line === undefined) throw new Error('no postgres user')
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}

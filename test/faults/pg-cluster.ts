import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../process/spawn';

/**
 * A throwaway PostgreSQL cluster (Debian postgresql-common) for the fault suite, so that the
 * shared server on 5432 is never stopped, restarted or frozen. Every operation here names this
 * cluster's version and name explicitly; nothing ever addresses another cluster, except the sweep
 * of clusters this helper created in a test process that has since died.
 */

const run = promisify(execFile);

export const CLUSTER_PREFIX = 'confidant_fault_';
export const OWNER_ROLE = 'confidant_owner';
export const SERVICE_ROLE = 'confidant_app';
export const DATABASE = 'confidant';

/** Why the fault suite cannot run here, or undefined when it can. */
export function pgClusterUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux (postgresql-common, /proc, SIGSTOP)';
  if (process.getuid?.() !== 0) return 'needs root (pg_createcluster, signals to the postgres user\'s processes)';
  for (const tool of ['pg_createcluster', 'pg_ctlcluster', 'pg_dropcluster', 'pg_lsclusters']) {
    if (spawnSync('which', [tool]).status !== 0) return `needs ${tool} (Debian postgresql-common)`;
  }
  if (!installedVersion()) return 'no PostgreSQL server version under /usr/lib/postgresql';
  return undefined;
}

function installedVersion(): string | undefined {
  if (!existsSync('/usr/lib/postgresql')) return undefined;
  const versions = readdirSync('/usr/lib/postgresql')
    .filter((v) => /^\d+$/.test(v) && Number(v) >= 15 && existsSync(`/usr/lib/postgresql/${v}/bin/postgres`))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0];
}

interface ListedCluster {
  version: string;
  name: string;
  port: number;
  status: string;
  dataDir: string;
  logFile: string;
}

function listClusters(): ListedCluster[] {
  const r = spawnSync('pg_lsclusters', ['-h'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [version, name, port, status, , dataDir, logFile] = line.trim().split(/\s+/);
      return { version: version!, name: name!, port: Number(port), status: status!, dataDir: dataDir!, logFile: logFile ?? '' };
    });
}

/** The postmaster's pid from its pid file (undefined when the cluster is not running). */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Direct children of a process (the postmaster's backends and auxiliary processes), from /proc. */
function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so parse after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) kids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return kids;
}

function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** SIGCONT to every process of a cluster: harmless when nothing is stopped, vital before a stop. */
function thawAll(dataDir: string, extra: Iterable<number> = []): void {
  for (const pid of extra) signal(pid, 'SIGCONT');
  const pm = postmasterPid(dataDir);
  if (pm === undefined) return;
  signal(pm, 'SIGCONT');
  for (const kid of childrenOf(pm)) signal(kid, 'SIGCONT');
}

const confDir = (version: string, name: string) => `/etc/postgresql/${version}/${name}`;
const OUR_CONF = 'conf.d/confidant-fault.conf';

/** Synchronous and idempotent: usable from an 'exit' handler. */
function dropSync(version: string, name: string, dataDir: string, extra: Iterable<number> = []): void {
  if (!name.startsWith(CLUSTER_PREFIX)) throw new Error(`refusing to drop ${version}/${name}: not a fault-suite cluster`);
  if (listClusters().some((c) => c.version === version && c.name === name)) {
    thawAll(dataDir, extra);
    // Already stopped is fine: pg_dropcluster --stop covers the rest.
    spawnSync('pg_ctlcluster', [version, name, 'stop', '-m', 'immediate'], { encoding: 'utf8', timeout: 30_000 });
    spawnSync('pg_dropcluster', ['--stop', version, name], { encoding: 'utf8', timeout: 60_000 });
  }
  // pg_dropcluster removes only the files it made: our settings file would keep the directory.
  if (!listClusters().some((c) => c.version === version && c.name === name)) {
    rmSync(confDir(version, name), { recursive: true, force: true });
  }
}

/** Whether a process exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Drops clusters this helper made in test processes that no longer exist (a SIGKILLed run
 * cannot clean up after itself). A cluster's name carries its creator's pid.
 */
export function sweepAbandonedClusters(): string[] {
  const dropped: string[] = [];
  const ours = new RegExp(`^${CLUSTER_PREFIX}(\\d+)_[0-9a-f]+$`);
  const listed = listClusters();
  for (const c of listed) {
    const m = ours.exec(c.name);
    if (!m || pidAlive(Number(m[1]))) continue;
    dropSync(c.version, c.name, c.dataDir);
    dropped.push(`${c.version}/${c.name}`);
  }
  // Configuration directories left without a cluster (pg_dropcluster keeps a directory holding a file it did not make).
  for (const version of existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : []) {
    for (const name of readdirSync(`/etc/postgresql/${version}`)) {
      const m = ours.exec(name);
      if (!m || pidAlive(Number(m[1])) || listed.some((c) => c.version === version && c.name === name)) continue;
      rmSync(confDir(version, name), { recursive: true, force: true });
      dropped.push(`${version}/${name} (configuration only)`);
    }
  }
  return dropped;
}

export interface FaultCluster {
  version: string;
  name: string;
  port: number;
  dataDir: string;
  logFile: string;
  /** Superuser (trust auth on 127.0.0.1). */
  adminUrl: string;
  /** The tables' owner: runs migrations. */
  ownerUrl: string;
  /** The service role: owns nothing, cannot bypass RLS. */
  serviceUrl: string;
  readonly frozen: boolean;
  /** Runs fn on a fresh superuser connection to the service's database (refused while frozen). */
  withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T>;
  /** pg_terminate_backend() of every backend of the service and owner roles; what was ended. */
  terminateServiceConnections(): Promise<{ terminated: number; byState: Record<string, number>; byApplication: Record<string, number> }>;
  /**
   * `pg_ctlcluster restart -m fast`. Resolves with the time the server logged "ready to accept
   * connections" (pg_ctlcluster itself returns up to ~2.5 s after that, so its return time would
   * flatter any recovery measured from it).
   */
  restart(): Promise<number>;
  stop(): Promise<void>;
  /** `pg_ctlcluster start`; resolves with the logged ready time, as restart() does. */
  start(): Promise<number>;
  /** SIGSTOP to the postmaster, then to every child (until no unstopped child is left). */
  freeze(): Promise<number[]>;
  /** SIGCONT to every process frozen (and every current child, in case). */
  thaw(): void;
  /**
   * Polls with real connections (startup, auth, `select 1`) until one succeeds; resolves with
   * Date.now() at that success. Each attempt is bounded by connectTimeoutMs.
   */
  waitAccepting(opts?: { timeoutMs?: number; intervalMs?: number; connectTimeoutMs?: number }): Promise<number>;
  /** The server's own "ready to accept connections" log times (epoch ms) at or after `since`. */
  readyLoggedSince(since: number): number[];
  /** Times (epoch ms) of the server's log lines matching `message`, at or after `since`. */
  loggedSince(message: RegExp, since: number): number[];
  /** Stops (thawing first) and drops the cluster: idempotent, never throws. */
  drop(): Promise<void>;
}

export interface CreateOptions {
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string | number>;
}

/**
 * Creates, starts and prepares a throwaway cluster on a free port: trust auth on localhost,
 * small settings, an owner role, the service role and one database owned by the owner.
 */
export async function createFaultCluster(opts: CreateOptions = {}): Promise<FaultCluster> {
  const reason = pgClusterUnavailableReason();
  if (reason) throw new Error(`cannot create a PostgreSQL cluster: ${reason}`);
  sweepAbandonedClusters();
  const version = installedVersion()!;
  const name = `${CLUSTER_PREFIX}${process.pid}_${randomBytes(3).toString('hex')}`;
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    max_connections: 60,
    shared_buffers: '16MB',
    // Exact times of "ready to accept connections", in UTC, for the recovery measurements.
    log_line_prefix: '%m [%p] %q%u@%d ',
    log_timezone: 'UTC',
    ssl: 'off',
    ...opts.settings,
  };
  let frozenPids: number[] = [];
  let port = 0;
  let dataDir = '';
  let logFile = '';
  let dropped = false;
  // Drop even when the test process exits without running its afterAll (a crash, process.exit).
  const onExit = () => {
    if (!dropped) dropSync(version, name, dataDir, frozenPids);
  };
  process.on('exit', onExit);

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await run('pg_createcluster', ['--start-conf=manual', '-p', String(port), '-q', version, name, '--', '--auth=trust', '--no-sync'], {
        timeout: 60_000,
      });
      const listed = listClusters().find((c) => c.version === version && c.name === name)!;
      dataDir = listed.dataDir;
      logFile = listed.logFile;
      // Our settings in a file of their own, read after postgresql.conf (Debian's include_dir conf.d).
      const conf = Object.entries(settings)
        .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v.replace(/'/g, "''")}'`}`)
        .join('\n');
      writeFileSync(`${confDir(version, name)}/${OUR_CONF}`, `${conf}\n`);
      await run('pg_ctlcluster', [version, name, 'start'], { timeout: 60_000 });
      break;
    } catch (err) {
      // Another process may have taken the port between freePort() and the start: try another.
      dropSync(version, name, dataDir);
      if (attempt >= 2) {
        process.off('exit', onExit);
        throw err;
      }
    }
  }

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const urlAs = (role: string, db = DATABASE) => `postgres://${role}@127.0.0.1:${port}/${db}`;

  const withAdmin = async <T>(fn: (c: pg.Client) => Promise<T>, url = adminUrl): Promise<T> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, query_timeout: 30_000 });
    c.on('error', () => {}); // a fault may end it; the next query rejects anyway
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => {});
    }
  };

  // The log's millisecond timestamps are the server's own clock, which is this machine's clock.
  // Without the line (a log rotated away), the time pg_ctlcluster returned is the upper bound.
  const readyAfter = async (since: number): Promise<number> => {
    const logged = cluster.readyLoggedSince(since - 5);
    return logged[0] ?? (await cluster.waitAccepting());
  };

  const cluster: FaultCluster = {
    version,
    name,
    port,
    dataDir,
    logFile,
    adminUrl,
    ownerUrl: urlAs(OWNER_ROLE),
    serviceUrl: urlAs(SERVICE_ROLE),
    get frozen() {
      return frozenPids.length > 0;
    },
    withAdmin: (fn) => {
      if (frozenPids.length) return Promise.reject(new Error('the cluster is frozen: thaw it before connecting'));
      return withAdmin(fn, urlAs('postgres'));
    },
    terminateServiceConnections: () =>
      withAdmin(async (c) => {
        const r = await c.query<{ state: string | null; application_name: string }>(
          `select pg_terminate_backend(pid) as ended, state, application_name
             from pg_stat_activity
            where usename = any($1) and pid <> pg_backend_pid()`,
          [[SERVICE_ROLE, OWNER_ROLE]],
        );
        const byState: Record<string, number> = {};
        const byApplication: Record<string, number> = {};
        for (const row of r.rows) {
          byState[row.state ?? 'unknown'] = (byState[row.state ?? 'unknown'] ?? 0) + 1;
          byApplication[row.application_name || '?'] = (byApplication[row.application_name || '?'] ?? 0) + 1;
        }
        return { terminated: r.rowCount ?? 0, byState, byApplication };
      }),
    restart: async () => {
      const since = Date.now();
      await run('pg_ctlcluster', [version, name, 'restart', '-m', 'fast'], { timeout: 60_000 });
      return readyAfter(since);
    },
    stop: async () => {
      await run('pg_ctlcluster', [version, name, 'stop', '-m', 'fast'], { timeout: 60_000 });
    },
    start: async () => {
      const since = Date.now();
      await run('pg_ctlcluster', [version, name, 'start'], { timeout: 60_000 });
      return readyAfter(since);
    },
    freeze: async () => {
      const pm = postmasterPid(dataDir);
      if (pm === undefined) throw new Error(`cluster ${version}/${name} is not running`);
      // The postmaster first, so that it forks nothing new while its children are stopped.
      signal(pm, 'SIGSTOP');
      const stopped = new Set<number>([pm]);
      frozenPids = [pm];
      for (let round = 0; round < 10; round++) {
        const fresh = childrenOf(pm).filter((p) => !stopped.has(p));
        if (fresh.length === 0) break;
        for (const p of fresh) {
          if (signal(p, 'SIGSTOP')) stopped.add(p);
        }
        frozenPids = [...stopped];
      }
      // SIGSTOP is asynchronous: wait until the kernel reports every one stopped.
      const until = Date.now() + 2_000;
      while (Date.now() < until && frozenPids.some((p) => !['T', undefined].includes(processState(p)))) {
        await new Promise((r) => setTimeout(r, 5));
      }
      return [...frozenPids];
    },
    thaw: () => {
      thawAll(dataDir, frozenPids);
      frozenPids = [];
    },
    waitAccepting: async ({ timeoutMs = 60_000, intervalMs = 25, connectTimeoutMs = 1_000 } = {}) => {
      if (frozenPids.length) throw new Error('waitAccepting() while frozen would only fill the listen queue: thaw first');
      const until = Date.now() + timeoutMs;
      let last: unknown;
      while (Date.now() < until) {
        const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: connectTimeoutMs, query_timeout: connectTimeoutMs });
        c.on('error', () => {});
        try {
          await c.connect();
          await c.query('select 1');
          const at = Date.now();
          await c.end().catch(() => {});
          return at;
        } catch (err) {
          last = err;
          await c.end().catch(() => {});
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
      throw new Error(`cluster ${version}/${name} did not accept connections within ${timeoutMs} ms: ${(last as Error)?.message}`);
    },
    readyLoggedSince: (since) => cluster.loggedSince(/database system is ready to accept connections/, since),
    loggedSince: (message, since) => {
      let text = '';
      try {
        text = readFileSync(logFile, 'utf8');
      } catch {
        return [];
      }
      const times: number[] = [];
      for (const m of text.matchAll(/^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) UTC \[\d+\] (.*)$/gm)) {
        if (!message.test(m[3]!)) continue;
        const t = Date.parse(`${m[1]}T${m[2]}Z`);
        if (t >= since) times.push(t);
      }
      return times;
    },
    drop: async () => {
      if (dropped) return;
      try {
        dropSync(version, name, dataDir, frozenPids);
        frozenPids = [];
      } finally {
        dropped = !listClusters().some((c) => c.version === version && c.name === name);
        if (dropped) process.off('exit', onExit);
      }
    },
  };

  try {
    await withAdmin(async (c) => {
      await c.query(`create role ${OWNER_ROLE} login nosuperuser nobypassrls nocreatedb nocreaterole`);
      await c.query(`create role ${SERVICE_ROLE} login nosuperuser nobypassrls nocreatedb nocreaterole`);
      await c.query(`create database ${DATABASE} owner ${OWNER_ROLE}`);
    });
  } catch (err) {
    await cluster.drop();
    throw err;
  }
  return cluster;
}

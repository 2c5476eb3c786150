import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { OWNER_ROLE, PG_ADMIN_URL, SERVICE_ROLE, urlFor, withAdmin } from '../../test/pg-admin';
import { procCpuMs } from './cpu';

/**
 * Bench databases on the shared PostgreSQL server. Names carry this process's pid so that
 * a later run can tell a leftover (its creator is dead, nobody connected) from a database
 * another run is using right now. They never match the test suite's `confidant_t_%`, so a
 * concurrent `npm run test:pg` never drops ours, and we never drop its.
 */
export const BENCH_PREFIX = 'confidant_bench_';

export { OWNER_ROLE, SERVICE_ROLE, urlFor };

/** The two roles, exactly as test/global-setup.ts sets them up. */
export async function ensureRoles(): Promise<void> {
  await withAdmin(async (c) => {
    for (const [role, attrs] of [
      [OWNER_ROLE, 'login nosuperuser nobypassrls createdb'],
      [SERVICE_ROLE, 'login nosuperuser nobypassrls nocreatedb nocreaterole'],
    ] as const) {
      const exists = await c.query('select 1 from pg_roles where rolname = $1', [role]);
      await c.query(`${exists.rowCount ? 'alter' : 'create'} role ${role} ${attrs}`);
    }
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Drops bench databases left by runs that died before their own cleanup. Returns their names. */
export async function dropLeftovers(): Promise<string[]> {
  return withAdmin(async (c) => {
    const { rows } = await c.query<{ datname: string; conns: number }>(
      `select d.datname, (select count(*) from pg_stat_activity a where a.datname = d.datname)::int as conns
         from pg_database d where d.datname like $1`,
      [`${BENCH_PREFIX}%`],
    );
    const dropped: string[] = [];
    for (const r of rows) {
      const pid = Number(/^confidant_bench_(\d+)_/.exec(r.datname)?.[1]);
      if (r.conns > 0 || (Number.isFinite(pid) && pid !== process.pid && pidAlive(pid))) continue;
      await c.query(`drop database if exists ${r.datname} with (force)`);
      dropped.push(r.datname);
    }
    return dropped;
  });
}

/** A superuser connection string for one bench database (row-level security does not apply to it). */
export function adminUrlFor(database: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function createDatabase(label: string): Promise<string> {
  const name = `${BENCH_PREFIX}${process.pid}_${randomBytes(4).toString('hex')}_${label}`;
  await withAdmin((c) => c.query(`create database ${name} owner ${OWNER_ROLE}`));
  return name;
}

export async function dropDatabases(names: string[]): Promise<void> {
  if (names.length === 0) return;
  await withAdmin(async (c) => {
    for (const n of names) await c.query(`drop database if exists ${n} with (force)`);
  });
}

/** The baseline's table: the columns GET /api/profile returns, one primary key, `rows` rows. */
export async function seedBaseline(database: string, rows: number): Promise<string[]> {
  const c = new pg.Client({ connectionString: urlFor(OWNER_ROLE, database) });
  await c.connect();
  try {
    await c.query(`create table bench_profiles (
      account_id uuid primary key,
      given_name text not null,
      family_name text not null,
      date_of_birth date not null,
      nhs_number text,
      created_at timestamptz not null default now(),
      email text not null)`);
    const { rows: ids } = await c.query<{ account_id: string }>(
      `insert into bench_profiles (account_id, given_name, family_name, date_of_birth, email)
         select gen_random_uuid(), 'Bench', 'Patient' || i, date '1980-01-01', 'bench' || i || '@example.com'
         from generate_series(1, $1::int) i
       returning account_id`,
      [rows],
    );
    await c.query('analyze bench_profiles');
    return ids.map((r) => r.account_id);
  } finally {
    await c.end();
  }
}

export async function serverVersion(): Promise<string> {
  return withAdmin(async (c) => (await c.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v);
}

export async function commitSettings(): Promise<Record<string, string>> {
  return withAdmin(async (c) => {
    const out: Record<string, string> = {};
    for (const s of ['synchronous_commit', 'fsync', 'commit_delay', 'wal_sync_method', 'max_connections']) {
      out[s] = (await c.query<{ v: string }>(`select current_setting($1) as v`, [s])).rows[0]!.v;
    }
    return out;
  });
}

/** Before a bench's first database: the server's version and commit settings, the roles, leftovers dropped (and logged). */
export async function preparePostgres(log: (msg: string) => void): Promise<{ version: string; settings: Record<string, string> }> {
  const version = await serverVersion();
  const settings = await commitSettings();
  await ensureRoles();
  const leftovers = await dropLeftovers();
  if (leftovers.length) log(`dropped leftover bench databases: ${leftovers.join(', ')}`);
  return { version, settings };
}

export interface ActivityProfile {
  samples: number;
  /** Mean number of the database's client backends in each state over the sampling window. */
  meanBackends: Record<string, number>;
  /** CPU time of those backends over the window (from /proc; null when it cannot be read, e.g. a remote server). */
  backendCpuMs: number | null;
}

/**
 * Samples pg_stat_activity for one database every `everyMs` (read-only; no server setting
 * is touched). Tells time spent running, waiting on a lock, flushing WAL at commit, or
 * idle inside a transaction while the Node process decides what to send next.
 */
export function sampleActivity(database: string, everyMs = 20) {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, application_name: 'confidant-bench-sampler' });
  const totals = new Map<string, number>();
  let samples = 0;
  let stopped = false;
  let loop: Promise<void> = Promise.resolve();
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(new URL(PG_ADMIN_URL).hostname);
  const cpuAtStart = new Map<number, number>();
  const backends = async () =>
    (
      await c.query<{ pid: number }>(
        `select pid from pg_stat_activity where datname = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()`,
        [database],
      )
    ).rows.map((r) => r.pid);
  const label = (state: string | null, type: string | null, event: string | null) => {
    if (state === 'idle') return 'idle in pool';
    if (state === 'idle in transaction') return 'idle in transaction (waiting for the Node process)';
    if (state === 'active' && !type) return 'active, on CPU';
    return `${state}, waiting ${type}:${event}`;
  };
  return {
    async start() {
      await c.connect();
      if (local) {
        for (const pid of await backends()) {
          const ms = procCpuMs(pid);
          if (!Number.isNaN(ms)) cpuAtStart.set(pid, ms);
        }
      }
      loop = (async () => {
        while (!stopped) {
          const { rows } = await c.query<{ state: string | null; t: string | null; e: string | null; n: number }>(
            `select state, wait_event_type as t, wait_event as e, count(*)::int as n from pg_stat_activity
              where datname = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()
              group by 1, 2, 3`,
            [database],
          );
          samples++;
          for (const r of rows) {
            const k = label(r.state, r.t, r.e);
            totals.set(k, (totals.get(k) ?? 0) + r.n);
          }
          await new Promise((r) => setTimeout(r, everyMs));
        }
      })();
    },
    async stop(): Promise<ActivityProfile> {
      stopped = true;
      await loop.catch(() => {});
      let backendCpuMs: number | null = null;
      if (local) {
        // Backends opened during the window count from zero; one closed during it is lost (rare: pools keep theirs).
        let total = 0;
        let seen = 0;
        for (const pid of await backends().catch(() => [] as number[])) {
          const ms = procCpuMs(pid);
          if (Number.isNaN(ms)) continue;
          total += ms - (cpuAtStart.get(pid) ?? 0);
          seen++;
        }
        backendCpuMs = seen ? total : null;
      }
      await c.end().catch(() => {});
      const meanBackends: Record<string, number> = {};
      for (const [k, v] of [...totals.entries()].sort((a, b) => b[1] - a[1])) meanBackends[k] = samples ? v / samples : 0;
      return { samples, meanBackends, backendCpuMs };
    },
  };
}

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase } from '../src/db';
import { OWNER_ROLE, PG_ADMIN_URL, SERVICE_ROLE, urlFor, withAdmin } from '../test/pg-admin';

/**
 * The drill's database on the shared PostgreSQL server: fresh, migrated by the owner role (as the
 * tests do), dropped at the end. Its name carries this process's pid, so a later run can tell a
 * leftover (its creator is dead, nobody connected) from one another run is using.
 */
const PREFIX = 'confidant_drill_';

export interface DrillDatabase {
  name: string;
  /** What the service processes connect as: the role that owns nothing (DATABASE_URL). */
  serviceUrl: string;
  /** The role that owns the tables and runs migrations (DATABASE_OWNER_URL); the drill's own "migration" runs as it too. */
  ownerUrl: string;
  /**
   * A superuser connection to this database, for observing only (audit events, alerts, recordings:
   * row-level security would hide them from any other role) and for clearing detection's counters
   * between cases. Nothing the service does goes through it.
   */
  observer: pg.Client;
  drop(): Promise<void>;
}

function adminUrlFor(database: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function createDrillDatabase(): Promise<DrillDatabase> {
  const name = `${PREFIX}${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdmin(async (c) => {
    // The two roles exactly as test/global-setup.ts makes them.
    for (const [role, attrs] of [
      [OWNER_ROLE, 'login nosuperuser nobypassrls createdb'],
      [SERVICE_ROLE, 'login nosuperuser nobypassrls nocreatedb nocreaterole'],
    ] as const) {
      const exists = await c.query('select 1 from pg_roles where rolname = $1', [role]);
      await c.query(`${exists.rowCount ? 'alter' : 'create'} role ${role} ${attrs}`);
    }
    const { rows } = await c.query<{ datname: string; conns: number }>(
      `select d.datname, (select count(*) from pg_stat_activity a where a.datname = d.datname)::int as conns
         from pg_database d where d.datname like $1`,
      [`${PREFIX}%`],
    );
    for (const r of rows) {
      const pid = Number(/^confidant_drill_(\d+)_/.exec(r.datname)?.[1]);
      if (r.conns === 0 && !(Number.isFinite(pid) && pidAlive(pid))) await c.query(`drop database if exists ${r.datname} with (force)`);
    }
    await c.query(`create database ${name} owner ${OWNER_ROLE}`);
  });
  const serviceUrl = urlFor(SERVICE_ROLE, name);
  const ownerUrl = urlFor(OWNER_ROLE, name);
  const db = await openDatabase({ kind: 'postgres', url: serviceUrl, ownerUrl, poolSize: 2, serviceRole: SERVICE_ROLE });
  await db.migrate();
  await db.close();
  const observer = new pg.Client({ connectionString: adminUrlFor(name), application_name: 'confidant-drill' });
  await observer.connect();
  let dropped = false;
  return {
    name,
    serviceUrl,
    ownerUrl,
    observer,
    async drop() {
      if (dropped) return;
      dropped = true;
      await observer.end().catch(() => undefined);
      await withAdmin((c) => c.query(`drop database if exists ${name} with (force)`));
    },
  };
}

/** One statement (or a few, in one transaction) as the owner role: what a migration would run as. */
export async function asOwner(ownerUrl: string, statements: string): Promise<void> {
  const c = new pg.Client({ connectionString: ownerUrl, application_name: 'confidant-drill-migration' });
  await c.connect();
  try {
    await c.query(`begin; ${statements}; commit;`);
  } finally {
    await c.end();
  }
}

/**
 * What the database itself lets a patient's request read, with no query filter at all: the
 * service role, the principal set the way every request sets it. Proves which layer is really in
 * place (row-level security open or closed) rather than assuming it. `recordings`: what the media
 * route's query can reach; `listable`: what the replay list's query can (it joins consultations).
 */
export async function visibleToPatient(serviceUrl: string, patientId: string): Promise<{ recordings: number; listable: number }> {
  const c = new pg.Client({ connectionString: serviceUrl, application_name: 'confidant-drill-probe' });
  await c.connect();
  try {
    await c.query('begin read only');
    await c.query(`select set_config('confidant.principal_kind', 'patient', true), set_config('confidant.principal_id', $1, true)`, [patientId]);
    const { rows } = await c.query<{ recordings: number; listable: number }>(
      `select (select count(*) from recordings where status = 'ready')::int as recordings,
              (select count(*) from recordings r join consultations c on c.id = r.consultation_id where r.status = 'ready')::int as listable`,
    );
    await c.query('rollback');
    return rows[0]!;
  } finally {
    await c.end();
  }
}

/** The read policies the replay path depends on, as the catalogue has them (to prove a restore). */
export async function replayPolicies(observer: pg.Client): Promise<string> {
  const { rows } = await observer.query(
    `select tablename, policyname, cmd, permissive, roles::text as roles, qual, with_check from pg_policies
      where schemaname = 'public' and tablename in ('recordings', 'consultations') order by tablename, policyname`,
  );
  return JSON.stringify(rows);
}

/**
 * The drill's bad migration (case 2): the replay tables' read policies let every row through for
 * the service role. `recordings_read` is replaced with USING (true); consultations (which the
 * replay list joins) gets a SELECT policy USING (true) beside its one policy, which also governs
 * writes and is left alone. Run as the owner role, as a migration would be. Returns the undo.
 */
export async function openReplayRls(db: DrillDatabase, serviceRole: string): Promise<() => Promise<void>> {
  const before = await replayPolicies(db.observer);
  const { rows } = await db.observer.query<{ qual: string; roles: string }>(
    `select qual, roles::text as roles from pg_policies where schemaname = 'public' and tablename = 'recordings' and policyname = 'recordings_read' and cmd = 'SELECT'`,
  );
  const original = rows[0];
  if (!original) throw new Error('drill: the recordings_read policy is not where migration 0007 put it');
  await asOwner(
    db.ownerUrl,
    `drop policy recordings_read on recordings;
     create policy recordings_read on recordings for select to ${serviceRole} using (true);
     create policy drill_consultations_read_all on consultations for select to ${serviceRole} using (true)`,
  );
  return async () => {
    const to = original.roles === '{public}' ? '' : ` to ${original.roles.replace(/^\{|\}$/g, '')}`;
    await asOwner(
      db.ownerUrl,
      `drop policy drill_consultations_read_all on consultations;
       drop policy recordings_read on recordings;
       create policy recordings_read on recordings for select${to} using (${original.qual})`,
    );
    const after = await replayPolicies(db.observer);
    if (after !== before) throw new Error(`drill: the replay tables' policies were not restored:\nbefore ${before}\nafter  ${after}`);
  };
}

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../src/db';
import { freshDatabase, onPostgres } from '../harness';
import type { Database } from '../../src/db';

/** Tables that hold no patient data, each with the reason. Everything else must have RLS, enabled and forced. */
const NO_RLS_ALLOW_LIST: Record<string, string> = {
  confidant_migrations: 'migration names and times; the service role may only read them (readiness)',
  audit_chain_head: 'one row: the chain head hash; only the owner touches it, via the audit trigger',
  sign_in_failures: 'hashes of throttling keys and timestamps; identifies no one',
};

/** SECURITY DEFINER functions: each one reviewed, each narrow. */
const SECURITY_DEFINER_ALLOW_LIST = new Set([
  'confidant_audit_chain',
  'confidant_audit_chain_close',
  'confidant_audit_head',
  'confidant_resolve_session',
  'confidant_peek_session',
  'confidant_taken_slots',
]);

let db: Database;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db?.close();
});

async function ownerQuery<T>(text: string): Promise<T[]> {
  return (await sql.raw<T>(text).execute(db.owner)).rows;
}

describe('row-level security in the catalog', () => {
  it('enables and forces RLS on every table outside the reviewed list', async () => {
    const tables = await ownerQuery<{ relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean }>(`
      select c.relname, c.relrowsecurity, c.relforcerowsecurity from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind in ('r', 'p')`);
    expect(tables.length).toBeGreaterThan(5);
    const missing = tables
      .filter((t) => !(t.relname in NO_RLS_ALLOW_LIST))
      .filter((t) => !t.relrowsecurity || !t.relforcerowsecurity)
      .map((t) => t.relname);
    expect(missing).toEqual([]);
    // And the allow-list names only tables that exist (no stale exemptions).
    for (const name of Object.keys(NO_RLS_ALLOW_LIST)) expect(tables.map((t) => t.relname)).toContain(name);
  });

  it('gives every RLS table at least one policy', async () => {
    const rows = await ownerQuery<{ relname: string; n: number }>(`
      select c.relname, count(p.polname)::int as n from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      left join pg_policy p on p.polrelid = c.oid
      where n.nspname = 'public' and c.relkind = 'r' and c.relrowsecurity group by c.relname`);
    expect(rows.filter((r) => r.n === 0).map((r) => r.relname)).toEqual([]);
  });

  it('has no SECURITY DEFINER function outside the allow-list', async () => {
    const fns = await ownerQuery<{ proname: string }>(`
      select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'public' and p.prosecdef`);
    expect(fns.map((f) => f.proname).sort()).toEqual([...SECURITY_DEFINER_ALLOW_LIST].sort());
  });

  it('has no view that runs with its owner\'s rights', async () => {
    const views = await ownerQuery<{ relname: string }>(`
      select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind in ('v', 'm')
        and not coalesce(c.reloptions @> array['security_invoker=true'], false)`);
    expect(views).toEqual([]);
  });

  it('grants the service role no DDL, no TRUNCATE, and only INSERT/SELECT on the audit log', async () => {
    const grants = await ownerQuery<{ table_name: string; privilege_type: string }>(`
      select table_name, privilege_type from information_schema.role_table_grants
      where grantee = 'confidant_app' and table_schema = 'public'`);
    expect(grants.filter((g) => ['TRUNCATE', 'REFERENCES', 'TRIGGER'].includes(g.privilege_type))).toEqual([]);
    expect(grants.filter((g) => g.table_name === 'audit_events').map((g) => g.privilege_type).sort()).toEqual(['INSERT', 'SELECT']);
    expect(grants.filter((g) => g.table_name === 'audit_chain_head')).toEqual([]);
    expect(grants.filter((g) => g.table_name === 'confidant_migrations').map((g) => g.privilege_type)).toEqual(['SELECT']);
  });
});

describe('row-level security in practice (service role)', () => {
  const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test setup' };
  const a = '11111111-1111-4111-8111-111111111111';
  const b = '22222222-2222-4222-8222-222222222222';

  beforeAll(async () => {
    await db.transaction(system, async (tx) => {
      for (const id of [a, b]) {
        await tx.insertInto('accounts').values({ id, kind: 'patient', email: `${id}@example.test`, display_name: 'P' }).execute();
        await tx.insertInto('patient_profiles').values({ account_id: id, given_name: 'G', family_name: 'F', date_of_birth: '1990-01-01' }).execute();
      }
    });
  });

  const as = (id: string) => ({ kind: 'patient' as const, id, role: null, sessionId: null, reason: null });

  it('shows a patient only their own profile even to a query with no WHERE clause', async () => {
    const rows = await db.transaction(as(a), (tx) => tx.selectFrom('patient_profiles').select('account_id').execute());
    expect(rows.map((r) => r.account_id)).toEqual([a]);
  });

  it('shows nothing to a transaction with no principal', async () => {
    const rows = await db.transaction({ kind: 'anonymous', id: null, role: null, sessionId: null, reason: null }, (tx) =>
      tx.selectFrom('patient_profiles').select('account_id').execute(),
    );
    expect(rows).toEqual([]);
  });

  it("refuses to write another patient's row and updates nothing", async () => {
    const updated = await db.transaction(as(a), (tx) =>
      tx.updateTable('patient_profiles').set({ given_name: 'Hacked' }).where('account_id', '=', b).executeTakeFirst(),
    );
    expect(Number(updated.numUpdatedRows)).toBe(0);
    await expect(
      db.transaction(as(a), (tx) =>
        tx.insertInto('mfa_recovery_codes').values({ account_id: b, code_hash: 'x' }).execute(),
      ),
    ).rejects.toThrow(/row-level security/);
  });

  it('refuses UPDATE and DELETE on the audit log, even for system work', async () => {
    await db.transaction(system, async (tx) => {
      await tx.insertInto('audit_events').values({ actor_kind: 'system', action: 'test.event', outcome: 'success', system_reason: 'x' } as never).execute();
    });
    // The service role has no UPDATE or DELETE grant at all...
    await expect(db.transaction(system, (tx) => tx.updateTable('audit_events').set({ action: 'x' }).execute())).rejects.toThrow(/permission denied/);
    await expect(db.transaction(system, (tx) => tx.deleteFrom('audit_events').execute())).rejects.toThrow(/permission denied/);
  });

  it('refuses UPDATE, DELETE and TRUNCATE on the audit log even to its owner (the triggers)', async () => {
    // Row-level security off for the owner, so that only the triggers stand in the way.
    const asOwner = (statement: string) =>
      db.owner.connection().execute(async (conn) => {
        try {
          await sql.raw(`begin; alter table audit_events no force row level security; ${statement}`).execute(conn);
        } finally {
          await sql.raw('rollback').execute(conn);
        }
      });
    await expect(asOwner("update audit_events set action = 'x'")).rejects.toThrow(/append-only/);
    await expect(asOwner('delete from audit_events')).rejects.toThrow(/append-only/);
    await expect(asOwner('truncate audit_events')).rejects.toThrow(/append-only/);
  });

  it('refuses an audit event that names someone else as the actor', async () => {
    await expect(
      db.transaction(as(a), (tx) =>
        tx.insertInto('audit_events').values({ actor_kind: 'patient', actor_id: b, action: 'forged', outcome: 'success' } as never).execute(),
      ),
    ).rejects.toThrow(/row-level security/);
  });
});

// PGlite's login role is not a security boundary (session_user stays superuser), so the
// role-escape checks run where they mean something: on the PostgreSQL server.
describe.runIf(onPostgres)('the service role cannot step around RLS (PostgreSQL)', () => {
  let client: pg.Client;
  beforeAll(async () => {
    const report = await db.inspectServiceRole();
    expect(report.sessionUser).toBe('confidant_app');
    // A plain connection as the service role, outside the scope factory, as an attacker with SQL would have.
    const url = new URL(process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    url.username = 'confidant_app';
    const dbName = (await sql<{ d: string }>`select current_database() as d`.execute(db.owner)).rows[0]!.d;
    url.pathname = `/${dbName}`;
    client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
  });

  it('is not a superuser, cannot bypass RLS and owns nothing', async () => {
    const report = await db.inspectServiceRole();
    expect(report).toMatchObject({ superuser: false, bypassRls: false, ownsTables: 0 });
  });

  it('cannot become the owner or a superuser', async () => {
    await expect(client.query('set role confidant_test_owner')).rejects.toThrow(/permission denied/);
    await expect(client.query('set role postgres')).rejects.toThrow(/permission denied/);
    await expect(client.query("select set_config('role', 'postgres', false)")).rejects.toThrow(/permission denied/);
  });

  it('cannot switch RLS off, alter policies, or read the chain head', async () => {
    await expect(client.query('alter table patient_profiles disable row level security')).rejects.toThrow(/must be owner/);
    await expect(client.query('drop policy patient_profiles_self on patient_profiles')).rejects.toThrow(/must be owner/);
    await expect(client.query('select * from audit_chain_head')).rejects.toThrow(/permission denied/);
    await expect(client.query('alter table audit_events disable trigger audit_events_no_update')).rejects.toThrow(/must be owner/);
    await expect(client.query('create table evil (x int)')).rejects.toThrow(/permission denied/);
  });

  it('sees no patient rows without a principal, even on a raw connection', async () => {
    const r = await client.query('select count(*)::int as n from patient_profiles');
    expect(r.rows[0].n).toBe(0);
  });
});

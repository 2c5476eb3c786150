import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely } from 'kysely';

const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface MigrationResult {
  applied: string[];
}

export async function listMigrations(): Promise<{ name: string; sql: string }[]> {
  const files = (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql')).sort();
  return Promise.all(
    files.map(async (f) => ({ name: f.replace(/\.sql$/, ''), sql: await readFile(path.join(migrationsDir, f), 'utf8') })),
  );
}

/**
 * Applies pending migrations as the owner, each in its own transaction, under an
 * advisory lock so that several processes starting together migrate once.
 */
export async function migrate(owner: Kysely<unknown>, serviceRole: string): Promise<MigrationResult> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(serviceRole)) throw new Error('invalid service role name');
  const migrations = await listMigrations();
  const applied: string[] = [];
  await owner.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(7206115)`.execute(conn);
    try {
      await sql`create table if not exists confidant_migrations (
        name text primary key, applied_at timestamptz not null default now())`.execute(conn);
      await sql`revoke all on confidant_migrations from public`.execute(conn);
      const done = new Set(
        (await sql<{ name: string }>`select name from confidant_migrations`.execute(conn)).rows.map((r) => r.name),
      );
      for (const m of migrations) {
        if (done.has(m.name)) continue;
        await conn.transaction().execute(async (tx) => {
          await sql.raw(m.sql.replaceAll('{{service_role}}', serviceRole)).execute(tx);
          await sql`insert into confidant_migrations (name) values (${m.name})`.execute(tx);
        });
        applied.push(m.name);
      }
    } finally {
      await sql`select pg_advisory_unlock(7206115)`.execute(conn);
    }
  });
  return { applied };
}

import pg from 'pg';

// Test-only helpers for the PostgreSQL run: roles and per-suite databases.
export const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const OWNER_ROLE = 'confidant_test_owner';
export const SERVICE_ROLE = 'confidant_app';

export function urlFor(role: string, database: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.username = role;
  u.password = '';
  u.pathname = `/${database}`;
  return u.toString();
}

export async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../src/db';
import { OWNER_ROLE, SERVICE_ROLE, urlFor, withAdmin } from './pg-admin';

declare module 'vitest' {
  export interface ProvidedContext {
    /** This run's PostgreSQL template database; suites clone it. Runs never share one. */
    pgTemplate: string;
  }
}

export const CACHE_DIR = path.resolve('.test-cache');
export const PGLITE_TEMPLATE = path.join(CACHE_DIR, 'pglite-template.tar');

/**
 * Builds the migrated database once per run; every suite then starts from a copy
 * (PGlite: a data-directory dump; PostgreSQL: CREATE DATABASE … TEMPLATE).
 */
export default async function setup(project: TestProject) {
  await mkdir(CACHE_DIR, { recursive: true });
  if (process.env.TEST_DATABASE === 'postgres') {
    const run = randomBytes(4).toString('hex');
    const TEMPLATE_DB = `confidant_tpl_${run}`;
    project.provide('pgTemplate', TEMPLATE_DB);
    await withAdmin(async (c) => {
      // The owner runs migrations; the service role owns nothing and cannot bypass RLS.
      for (const [role, attrs] of [
        [OWNER_ROLE, 'login nosuperuser nobypassrls createdb'],
        [SERVICE_ROLE, 'login nosuperuser nobypassrls nocreatedb nocreaterole'],
      ] as const) {
        const exists = await c.query('select 1 from pg_roles where rolname = $1', [role]);
        await c.query(`${exists.rowCount ? 'alter' : 'create'} role ${role} ${attrs}`);
      }
      await c.query(`create database ${TEMPLATE_DB} owner ${OWNER_ROLE}`);
    });
    const db = await openDatabase({
      kind: 'postgres',
      url: urlFor(SERVICE_ROLE, TEMPLATE_DB),
      ownerUrl: urlFor(OWNER_ROLE, TEMPLATE_DB),
      poolSize: 2,
      serviceRole: SERVICE_ROLE,
    });
    await db.migrate();
    await db.close();
    await withAdmin((c) => c.query(`alter database ${TEMPLATE_DB} is_template true`));
    return async () => {
      await withAdmin(async (c) => {
        // Only this run's databases: other runs may be going on at the same time.
        const dbs = await c.query(`select datname from pg_database where datname like $1`, [`confidant\\_t\\_${run}\\_%`]);
        for (const r of dbs.rows) await c.query(`drop database if exists ${r.datname} with (force)`);
        await c.query(`alter database ${TEMPLATE_DB} is_template false`);
        await c.query(`drop database if exists ${TEMPLATE_DB} with (force)`);
      });
    };
  }
  const db = await openDatabase({ kind: 'pglite', serviceRole: SERVICE_ROLE });
  await db.migrate();
  const dump = await db.dumpDataDir!();
  await writeFile(PGLITE_TEMPLATE, Buffer.from(await dump.arrayBuffer()));
  await db.close();
  return undefined;
}

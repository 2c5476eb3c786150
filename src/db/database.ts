import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { CompiledQuery, Kysely, PostgresDialect, sql, type Compilable } from 'kysely';
import pg from 'pg';
import { lockDataDir } from './data-dir-lock';
import { migrate } from './migrate';
import { AT_END, DEFER, END, NOWAIT, pipeliningPool } from './pg-pipeline';

const PIPELINED = Symbol('confidant.pipelined');
import { PGliteDialect } from './pglite-dialect';
import type { DB } from './schema';

/** A connection inside an open transaction that runs as the service role with a principal set. */
export type Tx = Kysely<DB>;

/** What a transaction runs as: written to `confidant.*` settings, read by the RLS policies. */
export interface TxPrincipal {
  kind: 'anonymous' | 'patient' | 'clinician' | 'staff' | 'system' | 'pending';
  id: string | null;
  role: string | null;
  sessionId: string | null;
  reason: string | null;
}

export type DatabaseOptions =
  | { kind: 'pglite'; dataDir?: string | undefined; loadDataDir?: Blob | undefined; serviceRole: string }
  | { kind: 'postgres'; url: string; ownerUrl: string; poolSize: number; serviceRole: string };

export interface RoleReport {
  sessionUser: string;
  superuser: boolean;
  bypassRls: boolean;
  ownsTables: number;
}

export interface Database {
  readonly kind: 'pglite' | 'postgres';
  /**
   * Runs `fn` in one transaction as the service role, with the principal set for RLS.
   * `readOnly` makes the database refuse any write in it.
   */
  transaction<T>(principal: TxPrincipal, fn: (tx: Tx) => Promise<T>, opts?: { readOnly?: boolean }): Promise<T>;
  /** Owner connection: migrations, operator maintenance, tests. Never for request work. */
  readonly owner: Kysely<DB>;
  migrate(): Promise<{ applied: string[] }>;
  /** Who the service's own connections log in as, and what that role could do. */
  inspectServiceRole(): Promise<RoleReport>;
  /** Signals between processes (NOTIFY is sent inside a scope's transaction, so it fires on commit). */
  listen(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>>;
  /** Embedded only: a snapshot of the whole data directory. */
  dumpDataDir?(): Promise<Blob>;
  close(): Promise<void>;
}

// int8 as number (counts, sequence numbers stay far below 2^53); date as its ISO text, never a local-midnight Date.
const parsers = { 20: (v: string) => Number(v), 1082: (v: string) => v };

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  return opts.kind === 'pglite' ? openPGlite(opts) : openPostgres(opts);
}

// The transaction's own statements, compiled once (they run for every request).
// Returns no row (nothing for the driver to describe and parse); the concatenation makes every
// set_config run, in order, before the WHERE is decided.
const SET_PRINCIPAL_SQL = `select where (set_config('role', $1, true)
        || set_config('confidant.principal_kind', $2, true)
        || set_config('confidant.principal_id', $3, true)
        || set_config('confidant.principal_role', $4, true)
        || set_config('confidant.session_id', $5, true)
        || set_config('confidant.reason', $6, true)) is null`;
const txStatements = (pipelined: boolean) => {
  const defer = pipelined ? DEFER : '';
  const end = pipelined ? END : '';
  return {
    begin: CompiledQuery.raw(`${defer}begin`),
    beginReadOnly: CompiledQuery.raw(`${defer}begin read only`),
    setPrincipal: `${defer}${SET_PRINCIPAL_SQL}`,
    commit: CompiledQuery.raw(`${end}commit`),
    commitReadOnly: CompiledQuery.raw(`${pipelined ? NOWAIT : end}commit`),
    rollback: CompiledQuery.raw(`${end}rollback`),
  };
};
const TX_PIPELINED = txStatements(true);
const TX_PLAIN = txStatements(false);

/**
 * Opens a transaction as the service role with the principal set, runs `fn`, commits.
 * On PostgreSQL the opening (BEGIN and the settings) is held back and sent in one batch with
 * the first real statement; a read-only transaction's COMMIT is not waited for (it has
 * nothing to make durable, and its audit events are committed separately before anyone
 * answers). Every setting is transaction-local: afterwards the connection forgets who it
 * was working for.
 */
async function runTransaction<T>(
  kysely: Kysely<DB>,
  serviceRole: string,
  p: TxPrincipal,
  fn: (tx: Tx) => Promise<T>,
  readOnly: boolean,
  pipelined: boolean,
): Promise<T> {
  const st = pipelined ? TX_PIPELINED : TX_PLAIN;
  return kysely.connection().execute(async (conn) => {
    (conn as unknown as { [PIPELINED]?: boolean })[PIPELINED] = pipelined;
    let result: T;
    try {
      await conn.executeQuery(readOnly ? st.beginReadOnly : st.begin);
      await conn.executeQuery(
        CompiledQuery.raw(st.setPrincipal, [serviceRole, p.kind, p.id ?? '', p.role ?? '', p.sessionId ?? '', p.reason ?? '']),
      );
      result = await fn(conn);
      await conn.executeQuery(readOnly ? st.commitReadOnly : st.commit);
    } catch (err) {
      await conn.executeQuery(st.rollback).catch(() => {});
      throw err;
    }
    return result;
  });
}

/**
 * Runs `query` as the transaction's last statement. On PostgreSQL it is sent together with
 * the COMMIT, in one batch: whatever it locks (the audit chain head) is held only inside the
 * database, never across a round trip. Any error surfaces from the transaction's commit.
 */
export async function executeAtCommit(tx: Tx, query: Compilable | { sql: string; parameters: readonly unknown[] }): Promise<void> {
  const compiled = 'compile' in query ? query.compile() : CompiledQuery.raw(query.sql, [...query.parameters]);
  const pipelined = (tx as unknown as { [PIPELINED]?: boolean })[PIPELINED];
  if (!pipelined) {
    await tx.executeQuery(compiled);
    return;
  }
  await tx.executeQuery(CompiledQuery.raw(AT_END + compiled.sql, [...compiled.parameters]));
}

async function openPGlite(opts: Extract<DatabaseOptions, { kind: 'pglite' }>): Promise<Database> {
  let unlock = () => {};
  if (opts.dataDir) {
    await mkdir(opts.dataDir, { recursive: true });
    unlock = lockDataDir(opts.dataDir);
  }
  const pglite = new PGlite({
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
    ...(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {}),
    parsers,
  });
  await pglite.waitReady;
  const kysely = new Kysely<DB>({ dialect: new PGliteDialect(pglite) });
  let closed = false;
  return {
    kind: 'pglite',
    owner: kysely,
    transaction: (principal, fn, o) => runTransaction(kysely, opts.serviceRole, principal, fn, o?.readOnly ?? false, false),
    migrate: () => migrate(kysely as Kysely<unknown>, opts.serviceRole),
    inspectServiceRole: async () => ({ sessionUser: 'postgres', superuser: true, bypassRls: true, ownsTables: 0 }),
    listen: async (channel, onMessage) => pglite.listen(channel, onMessage),
    dumpDataDir: () => pglite.dumpDataDir('none'),
    close: async () => {
      if (closed) return;
      closed = true;
      await kysely.destroy();
      await pglite.close();
      unlock();
    },
  };
}

async function openPostgres(opts: Extract<DatabaseOptions, { kind: 'postgres' }>): Promise<Database> {
  pg.types.setTypeParser(20, parsers[20]);
  pg.types.setTypeParser(1082, parsers[1082]);
  const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize, application_name: 'confidant' });
  const kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool: pipeliningPool(pool) }) });
  let ownerKysely: Kysely<DB> | undefined;
  const listeners = new Set<() => Promise<void>>();
  const owner = () =>
    (ownerKysely ??= new Kysely<DB>({
      dialect: new PostgresDialect({
        pool: new pg.Pool({ connectionString: opts.ownerUrl, max: 2, application_name: 'confidant-owner' }),
      }),
    }));
  return {
    kind: 'postgres',
    get owner() {
      return owner();
    },
    transaction: (principal, fn, o) => runTransaction(kysely, opts.serviceRole, principal, fn, o?.readOnly ?? false, true),
    migrate: () => migrate(owner() as Kysely<unknown>, opts.serviceRole),
    inspectServiceRole: async () => {
      const { rows } = await sql<RoleReport>`
        select session_user as "sessionUser", r.rolsuper as superuser, r.rolbypassrls as "bypassRls",
          (select count(*) from pg_class c where c.relowner = r.oid and c.relkind in ('r', 'p', 'v'))::int as "ownsTables"
        from pg_roles r where r.rolname = session_user`.execute(kysely);
      return rows[0]!;
    },
    listen: async (channel, onMessage) => {
      if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error('invalid channel name');
      let client: pg.Client | undefined;
      let stopped = false;
      const connect = async (): Promise<void> => {
        if (stopped) return;
        const c = new pg.Client({ connectionString: opts.url, application_name: 'confidant-listen' });
        c.on('notification', (n) => n.channel === channel && onMessage(n.payload ?? ''));
        c.on('error', () => {
          // Reconnect; callers treat a missed message like a cache miss (entries also expire).
          client = undefined;
          c.end().catch(() => {});
          setTimeout(() => void connect().catch(() => {}), 1000).unref();
        });
        await c.connect();
        await c.query(`listen ${channel}`);
        client = c;
      };
      await connect();
      listeners.add(async () => {
        stopped = true;
        await client?.end().catch(() => {});
      });
      return async () => {
        stopped = true;
        await client?.end().catch(() => {});
      };
    },
    close: async () => {
      for (const stop of listeners) await stop();
      await kysely.destroy();
      await ownerKysely?.destroy();
    },
  };
}

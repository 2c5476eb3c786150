import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import {
  CompiledQuery,
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresDialect,
  PostgresIntrospector,
  PostgresQueryCompiler,
  SingleConnectionProvider,
  sql,
  type Compilable,
  type Dialect,
} from 'kysely';
import pg from 'pg';
import { lockDataDir } from './data-dir-lock';
import { migrate } from './migrate';
import { AT_END, MultiplexedRead, PipelineDriver, ReadMultiplexer, type PipelinedConnection, type StatementRunner } from './pg-pipeline';

const PIPELINED = Symbol('confidant.pipelined');
/** On a PostgreSQL transaction's handle: what it runs its statements on (its lease, or its multiplexed read). */
const LEASE = Symbol('confidant.lease');
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
   * `readOnly` makes the database refuse any write in it; on PostgreSQL a read's statements then
   * each run in a READ ONLY transaction of their own, multiplexed with other reads (see
   * runMultiplexedRead: at READ COMMITTED they see what they would in one transaction).
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
const TX = {
  begin: CompiledQuery.raw('begin'),
  beginReadOnly: CompiledQuery.raw('begin read only'),
  commit: CompiledQuery.raw('commit'),
  rollback: CompiledQuery.raw('rollback'),
};

/**
 * Opens a transaction as the service role with the principal set, runs `fn`, commits (PGlite:
 * one embedded connection, no round trips to save). Every setting is transaction-local:
 * afterwards the connection forgets who it was working for.
 */
async function runTransaction<T>(
  kysely: Kysely<DB>,
  serviceRole: string,
  p: TxPrincipal,
  fn: (tx: Tx) => Promise<T>,
  readOnly: boolean,
): Promise<T> {
  return kysely.connection().execute(async (conn) => {
    let result: T;
    try {
      await conn.executeQuery(readOnly ? TX.beginReadOnly : TX.begin);
      await conn.executeQuery(
        CompiledQuery.raw(SET_PRINCIPAL_SQL, [serviceRole, p.kind, p.id ?? '', p.role ?? '', p.sessionId ?? '', p.reason ?? '']),
      );
      result = await fn(conn);
      await conn.executeQuery(TX.commit);
    } catch (err) {
      await conn.executeQuery(TX.rollback).catch(() => {});
      throw err;
    }
    return result;
  });
}

/**
 * The same on PostgreSQL, where round trips cost: the opening (BEGIN and the settings) is held
 * back and sent in one batch with the first real statement. The connection is leased from the
 * driver directly and the transaction's Kysely handle is bound to that one lease (what Kysely's
 * connection() builds, without its per-call machinery); once the transaction ends the lease is
 * released, and the handle refuses any further statement.
 */
async function runPipelinedTransaction<T>(
  pg: { driver: PipelineDriver; bind: (conn: PipelinedConnection) => Tx },
  serviceRole: string,
  p: TxPrincipal,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  const conn = await pg.driver.acquireConnection();
  try {
    conn.defer('begin', NO_VALUES);
    conn.defer(SET_PRINCIPAL_SQL, principalValues(serviceRole, p));
    const tx = pg.bind(conn);
    let result: T;
    try {
      result = await fn(tx);
      await conn.end('commit');
    } catch (err) {
      await conn.end('rollback').catch(() => {});
      throw err;
    }
    return result;
  } finally {
    conn.release();
  }
}

/**
 * A read on PostgreSQL: each of its statements runs as its own READ ONLY transaction with the
 * principal set, multiplexed with other requests' reads (src/db/pg-pipeline.ts, ReadMultiplexer).
 * At READ COMMITTED every statement already takes its own snapshot, so a read's statements see
 * what they would in one transaction; what differs is only that now() is per statement. A read
 * holds no connection between its statements, and its audit events are committed separately
 * before anyone answers (src/access/scope.ts).
 */
async function runMultiplexedRead<T>(
  pg: { mux: ReadMultiplexer; bind: (conn: MultiplexedRead) => Tx },
  serviceRole: string,
  p: TxPrincipal,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  const conn = new MultiplexedRead(pg.mux, [{ text: SET_PRINCIPAL_SQL, values: principalValues(serviceRole, p) }]);
  try {
    return await fn(pg.bind(conn));
  } finally {
    conn.end();
  }
}

function principalValues(serviceRole: string, p: TxPrincipal): unknown[] {
  return [serviceRole, p.kind, p.id ?? '', p.role ?? '', p.sessionId ?? '', p.reason ?? ''];
}
const NO_VALUES: readonly unknown[] = [];

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

/** Builds and compiles statements only; it never connects (both dialects compile as PostgreSQL). */
const compiler = new Kysely<DB>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/** Stands where a run's argument goes in a statement compiled once. */
class Placeholder {
  constructor(readonly name: string) {}
}

/** A statement compiled once; each run binds its arguments and runs it in the caller's transaction. */
export interface Statement<A, R> {
  readonly sql: string;
  run(tx: Tx, args: A): Promise<R[]>;
}

function runCompiled<R>(tx: Tx, template: CompiledQuery<R>, parameters: unknown[]): Promise<R[]> {
  // On PostgreSQL, straight to the transaction's own lease (the statement is already compiled, and
  // there are no plugins): the pg client still runs its statements one at a time, in call order,
  // and a lease that has ended refuses them.
  const lease = (tx as unknown as { [LEASE]?: StatementRunner })[LEASE];
  if (lease) return lease.query<R>(template.sql, parameters).then((r) => r.rows);
  const query: CompiledQuery<R> = { sql: template.sql, parameters, query: template.query, queryId: template.queryId };
  return tx.executeQuery(query).then((r) => r.rows);
}

/**
 * A hot statement built with Kysely and compiled to SQL once, when the module that declares it
 * loads: each run skips the builder and the compiler and only binds its arguments. `args` holds
 * placeholders, to be used where a run's values go (`.where('id', '=', args.id)`); other values
 * in the statement are fixed. The text never changes, so it stays prepared on every connection
 * (src/db/pg-pipeline.ts). It runs in the caller's transaction: the principal, row-level security
 * and READ ONLY apply exactly as to a statement built on the spot.
 */
export function compileOnce<A extends Record<string, unknown>, R>(build: (db: Kysely<DB>, args: A) => Compilable<R>): Statement<A, R> {
  const placeholders = new Proxy({} as A, {
    get: (_target, key) => (typeof key === 'string' ? new Placeholder(key) : undefined),
  });
  const template = build(compiler, placeholders).compile();
  const slots = template.parameters.map((p) => (p instanceof Placeholder ? p.name : null));
  const fixed = [...template.parameters];
  return {
    sql: template.sql,
    run: (tx, args) => {
      const parameters = new Array<unknown>(slots.length);
      for (let i = 0; i < slots.length; i++) {
        const name = slots[i];
        if (name === null || name === undefined) {
          parameters[i] = fixed[i];
        } else {
          const v = args[name];
          if (v === undefined) return Promise.reject(new Error(`compiled statement: no value for "${name}"`));
          parameters[i] = v;
        }
      }
      return runCompiled<R>(tx, template, parameters);
    },
  };
}

/**
 * A hot statement written in SQL (`$1`, `$2` … for its parameters), for what the builder cannot
 * say well. Same properties as `compileOnce`: one text, prepared per connection, run in the
 * caller's transaction under row-level security. Parameters only, never text spliced in.
 */
export function sqlStatement<R, P extends readonly unknown[]>(text: string): Statement<P, R> {
  const template = CompiledQuery.raw(text) as CompiledQuery<R>;
  return { sql: text, run: (tx, params) => runCompiled<R>(tx, template, [...params]) };
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
    transaction: (principal, fn, o) => runTransaction(kysely, opts.serviceRole, principal, fn, o?.readOnly ?? false),
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
  const driver = new PipelineDriver(pool);
  const mux = new ReadMultiplexer(pool, opts.poolSize);
  const dialect: Dialect = {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => driver,
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  };
  const kysely = new Kysely<DB>({ dialect });
  const executor = kysely.getExecutor();
  // What Kysely's connection().execute() builds, without its per-call machinery.
  const bind = (conn: PipelinedConnection | MultiplexedRead): Tx => {
    const tx = new Kysely<DB>({ config: { dialect }, dialect, driver, executor: executor.withConnectionProvider(new SingleConnectionProvider(conn)) });
    const marks = tx as unknown as { [PIPELINED]?: boolean; [LEASE]?: StatementRunner };
    marks[PIPELINED] = true;
    marks[LEASE] = conn;
    return tx;
  };
  const writes = { driver, bind };
  const reads = { mux, bind };
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
    transaction: (principal, fn, o) =>
      o?.readOnly ? runMultiplexedRead(reads, opts.serviceRole, principal, fn) : runPipelinedTransaction(writes, opts.serviceRole, principal, fn),
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

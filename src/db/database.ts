import { mkdir } from 'node:fs/promises';
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
import { abortWhy, CommitOutcomeUnknown, DeadlineExceeded, isConnectionLoss, markCommitting, raceAbort } from './failures';
import { AT_END, MultiplexedRead, PipelineDriver, ReadMultiplexer, destroySocket, type PipelinedConnection, type StatementRunner } from './pg-pipeline';

const PIPELINED = Symbol('confidant.pipelined');
/** On a PostgreSQL transaction's handle: what it runs its statements on (its lease, or its multiplexed read). */
const LEASE = Symbol('confidant.lease');
import { PGliteDialect } from './pglite-dialect';
import { EmbeddedDatabaseLost, EmbeddedPGlite, InThreadPGlite, type EmbeddedPGliteEvent, type EmbeddedPostgres } from './embedded-pglite';
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

/** Server-side limits for the service's PostgreSQL connections (milliseconds; 0 = none). */
export interface PostgresTimeouts {
  statementMs: number;
  lockMs: number;
  idleInTransactionMs: number;
  /** Waiting for a pool connection (or a new one to open) at most this long. */
  connectMs: number;
}

export const DEFAULT_PG_TIMEOUTS: PostgresTimeouts = { statementMs: 5_000, lockMs: 2_000, idleInTransactionMs: 15_000, connectMs: 5_000 };

/** What the database layer reports about itself (connections lost, LISTEN reconnected); no client object ever reaches it. */
export interface DatabaseObserver {
  connectionError?(where: 'pool' | 'client' | 'owner' | 'listen' | 'embedded', err: unknown): void;
  listenReconnected?(channel: string): void;
}

export type DatabaseOptions =
  | {
      kind: 'pglite';
      dataDir?: string | undefined;
      loadDataDir?: Blob | undefined;
      serviceRole: string;
      observer?: DatabaseObserver;
      /** Where PGlite runs: its own worker thread (default), or the caller's (benchmarks compare the two). */
      thread?: 'worker' | 'main' | undefined;
    }
  | {
      kind: 'postgres';
      url: string;
      ownerUrl: string;
      poolSize: number;
      serviceRole: string;
      timeouts?: PostgresTimeouts;
      observer?: DatabaseObserver;
    };

export interface TransactionOptions {
  readOnly?: boolean;
  /**
   * The request's deadline or its client leaving. Once it aborts, the transaction rejects at
   * once with DeadlineExceeded and never commits; if it aborts while the COMMIT is awaited, with
   * CommitOutcomeUnknown.
   */
  signal?: AbortSignal | undefined;
}

/** What a health probe learns in one round trip. */
export interface PingResult {
  /** Migrations the database has applied (names). */
  migrations: string[];
}

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
  transaction<T>(principal: TxPrincipal, fn: (tx: Tx) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  /** One round trip outside any principal (no patient data): readiness and start-up. Rejects once `signal` aborts. */
  ping(signal?: AbortSignal): Promise<PingResult>;
  /** Where connection losses and reconnections are reported from now on (the service's log and metrics). */
  observe(observer: DatabaseObserver): void;
  /** Pool figures for metrics (PostgreSQL; the embedded database has one connection). */
  poolStats?(): { total: number; idle: number; waiting: number };
  /** Owner connection: migrations, operator maintenance, tests. Never for request work. */
  readonly owner: Kysely<DB>;
  migrate(): Promise<{ applied: string[] }>;
  /** Who the service's own connections log in as, and what that role could do. */
  inspectServiceRole(): Promise<RoleReport>;
  /**
   * Signals between processes (NOTIFY is sent inside a scope's transaction, so it fires on commit).
   * After a lost connection is replaced, `onReconnect` runs: messages sent meanwhile are lost, so
   * the caller re-reads (or forgets) whatever they would have told it.
   */
  listen(channel: string, onMessage: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>>;
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
  signal: AbortSignal | undefined,
): Promise<T> {
  const state = { committing: false };
  const work = kysely.connection().execute(async (conn) => {
    // Waited for the one connection past the deadline: nobody is waiting for the answer.
    if (signal?.aborted) throw deadlineError(signal);
    let result: T;
    try {
      await conn.executeQuery(readOnly ? TX.beginReadOnly : TX.begin);
      await conn.executeQuery(
        CompiledQuery.raw(SET_PRINCIPAL_SQL, [serviceRole, p.kind, p.id ?? '', p.role ?? '', p.sessionId ?? '', p.reason ?? '']),
      );
      result = await fn(conn);
      // The embedded database cannot drop a statement half-way: the transaction finishes its
      // statement, and is rolled back here instead of committed.
      if (signal?.aborted) throw deadlineError(signal);
      state.committing = true;
      markCommitting(signal, 1);
      try {
        await conn.executeQuery(TX.commit);
      } finally {
        markCommitting(signal, -1);
      }
    } catch (err) {
      if (!state.committing) await conn.executeQuery(TX.rollback).catch(() => {});
      throw err;
    }
    return result;
  });
  return raceAbort(work, signal, () => (state.committing ? new CommitOutcomeUnknown() : deadlineError(signal!)));
}

function deadlineError(signal: AbortSignal): DeadlineExceeded {
  return new DeadlineExceeded(abortWhy(signal));
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
  signal: AbortSignal | undefined,
): Promise<T> {
  if (signal?.aborted) throw deadlineError(signal);
  const state = { committing: false };
  const work = (async () => {
    const conn = await raceAbort(pg.driver.acquireConnection(), signal, () => deadlineError(signal!), (late) => late.release());
    // Past the deadline, a statement in flight is abandoned (its connection closed), so the
    // server rolls the transaction back rather than finish it for nobody.
    const abandon = () => conn.abandon();
    signal?.addEventListener('abort', abandon, { once: true });
    try {
      conn.defer('begin', NO_VALUES);
      conn.defer(SET_PRINCIPAL_SQL, principalValues(serviceRole, p));
      const tx = pg.bind(conn);
      let result: T;
      try {
        result = await fn(tx);
        if (signal?.aborted) throw deadlineError(signal);
      } catch (err) {
        // A connection whose ROLLBACK failed may still be inside the transaction (or never opened
        // one): it is closed, never handed to the next caller.
        await conn.end('rollback').catch(() => conn.abandon());
        throw err;
      }
      state.committing = true;
      markCommitting(signal, 1);
      try {
        await conn.end('commit');
      } catch (err) {
        // The COMMIT was sent and its answer lost with the connection: it may have committed.
        if (isConnectionLoss(err) || signal?.aborted) throw new CommitOutcomeUnknown(err);
        throw err;
      } finally {
        markCommitting(signal, -1);
      }
      return result;
    } finally {
      signal?.removeEventListener('abort', abandon);
      conn.release();
    }
  })();
  return raceAbort(work, signal, () => (state.committing ? new CommitOutcomeUnknown() : deadlineError(signal!)));
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
  signal: AbortSignal | undefined,
): Promise<T> {
  if (signal?.aborted) throw deadlineError(signal);
  const conn = new MultiplexedRead(
    pg.mux,
    [{ text: SET_PRINCIPAL_SQL, values: principalValues(serviceRole, p) }],
    signal,
    signal ? () => deadlineError(signal) : undefined,
  );
  try {
    return await raceAbort(fn(pg.bind(conn)), signal, () => deadlineError(signal!));
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
  const { relay: observer, observe } = observerRelay(opts.observer);
  const source = { dataDir: opts.dataDir, loadDataDir: opts.loadDataDir };
  // On a worker unless asked: while PGlite runs a statement, its thread does nothing else.
  const pglite: EmbeddedPostgres =
    opts.thread === 'main' ? new InThreadPGlite(source) : new EmbeddedPGlite({ ...source, onEvent: (e) => reportEmbeddedEvent(observer, e) });
  try {
    await pglite.waitReady;
  } catch (err) {
    await pglite.close().catch(() => {});
    unlock();
    throw err;
  }
  const kysely = new Kysely<DB>({ dialect: new PGliteDialect(pglite) });
  let closed = false;
  return {
    kind: 'pglite',
    owner: kysely,
    observe,
    transaction: (principal, fn, o) => runTransaction(kysely, opts.serviceRole, principal, fn, o?.readOnly ?? false, o?.signal),
    ping: (signal) => raceAbort(readMigrations(kysely), signal, () => deadlineError(signal!)),
    migrate: () => migrate(kysely as Kysely<unknown>, opts.serviceRole),
    inspectServiceRole: async () => ({ sessionUser: 'postgres', superuser: true, bypassRls: true, ownsTables: 0 }),
    listen: (channel, onMessage, onReconnect) =>
      pglite.listen(channel, onMessage, () => {
        observer.listenReconnected?.(channel);
        onReconnect?.();
      }),
    dumpDataDir: async () => new Blob([await pglite.dumpDataDir()]),
    close: async () => {
      if (closed) return;
      closed = true;
      await kysely.destroy();
      await pglite.close();
      unlock();
    },
  };
}

/** The embedded database's worker died (or could not be restarted yet): reported like a lost connection. */
function reportEmbeddedEvent(observer: DatabaseObserver, event: EmbeddedPGliteEvent) {
  if (event.type === 'lost') observer.connectionError?.('embedded', new EmbeddedDatabaseLost(event.cause));
  else if (event.type === 'respawn-failed' || event.type === 'relisten-failed') observer.connectionError?.('embedded', event.cause);
}

async function openPostgres(opts: Extract<DatabaseOptions, { kind: 'postgres' }>): Promise<Database> {
  pg.types.setTypeParser(20, parsers[20]);
  pg.types.setTypeParser(1082, parsers[1082]);
  const { relay: observer, observe } = observerRelay(opts.observer);
  const t = opts.timeouts ?? DEFAULT_PG_TIMEOUTS;
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize,
    application_name: 'confidant',
    // Sent at connection start, so every service connection has them from its first statement:
    // a statement, a lock wait or a transaction left idle by a vanished client cannot hold the
    // database (or the audit chain head) for longer than this.
    ...(t.statementMs > 0 ? { statement_timeout: t.statementMs } : {}),
    ...(t.lockMs > 0 ? { lock_timeout: t.lockMs } : {}),
    ...(t.idleInTransactionMs > 0 ? { idle_in_transaction_session_timeout: t.idleInTransactionMs } : {}),
    ...(t.connectMs > 0 ? { connectionTimeoutMillis: t.connectMs } : {}),
    // A backend waiting on a lock notices within a second that its client has closed the
    // connection (an abandoned transaction, see PipelinedConnection.abandon) and rolls back,
    // even if a COMMIT was already queued behind the wait.
    options: '-c client_connection_check_interval=1000',
    keepAlive: true,
  });
  guardPool(pool, 'pool', observer);
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
  const owner = () => {
    if (ownerKysely) return ownerKysely;
    const ownerPool = new pg.Pool({ connectionString: opts.ownerUrl, max: 2, application_name: 'confidant-owner', keepAlive: true });
    guardPool(ownerPool, 'owner', observer);
    return (ownerKysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool: ownerPool }) }));
  };
  return {
    kind: 'postgres',
    get owner() {
      return owner();
    },
    transaction: (principal, fn, o) =>
      o?.readOnly
        ? runMultiplexedRead(reads, opts.serviceRole, principal, fn, o.signal)
        : runPipelinedTransaction(writes, opts.serviceRole, principal, fn, o?.signal),
    ping: async (signal) => {
      if (signal?.aborted) throw deadlineError(signal);
      const client = await raceAbort(pool.connect(), signal, () => deadlineError(signal!), (late) => late.release());
      const abandon = () => destroySocket(client);
      signal?.addEventListener('abort', abandon, { once: true });
      let failed: unknown;
      try {
        const { rows } = await client.query<{ name: string }>('select name from confidant_migrations order by name');
        return { migrations: rows.map((r) => r.name) };
      } catch (err) {
        // Connected, but not migrated yet (no table, or no grant on it before 0008): still an answer.
        if (isSchemaMissing(err)) return { migrations: [] };
        failed = err;
        throw signal?.aborted ? deadlineError(signal) : err;
      } finally {
        signal?.removeEventListener('abort', abandon);
        client.release(failed !== undefined || signal?.aborted ? new Error('ping failed') : undefined);
      }
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    observe,
    migrate: () => migrate(owner() as Kysely<unknown>, opts.serviceRole),
    inspectServiceRole: async () => {
      const { rows } = await sql<RoleReport>`
        select session_user as "sessionUser", r.rolsuper as superuser, r.rolbypassrls as "bypassRls",
          (select count(*) from pg_class c where c.relowner = r.oid and c.relkind in ('r', 'p', 'v'))::int as "ownsTables"
        from pg_roles r where r.rolname = session_user`.execute(kysely);
      return rows[0]!;
    },
    listen: async (channel, onMessage, onReconnect) => {
      if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error('invalid channel name');
      const subscription = new ListenSubscription(opts.url, channel, onMessage, () => {
        observer.listenReconnected?.(channel);
        onReconnect?.();
      }, (err) => observer.connectionError?.('listen', err));
      await subscription.start();
      const stop = () => subscription.stop();
      listeners.add(stop);
      return async () => {
        listeners.delete(stop);
        await stop();
      };
    },
    close: async () => {
      for (const stop of listeners) await stop();
      await kysely.destroy();
      await ownerKysely?.destroy();
    },
  };
}

/** An observer that forwards to whichever observer was set last (a database opened before the service's logger is wired). */
function observerRelay(initial: DatabaseObserver | undefined): { relay: Required<DatabaseObserver>; observe: (o: DatabaseObserver) => void } {
  let current = initial ?? {};
  return {
    relay: {
      connectionError: (where, err) => current.connectionError?.(where, err),
      listenReconnected: (channel) => current.listenReconnected?.(channel),
    },
    observe: (o) => void (current = o),
  };
}

/**
 * An EventEmitter with no 'error' listener throws, and pg reports a connection the server
 * ended (restart, failover, pg_terminate_backend, a proxy's idle timeout) as an 'error' event:
 * on the pool for an idle client, on the client itself while it is checked out. Both are
 * listened to here; the client's next statement rejects, so its caller still sees the failure,
 * and the pool drops the client and opens a new one when next asked. Logged without the client
 * object (its parameters hold the password).
 */
function guardPool(pool: pg.Pool, where: 'pool' | 'owner', observer: DatabaseObserver) {
  pool.on('error', (err) => observer.connectionError?.(where, err));
  pool.on('connect', (client) => {
    client.on('error', (err) => observer.connectionError?.(where === 'pool' ? 'client' : 'owner', err));
  });
}

/**
 * One LISTEN connection that comes back by itself: after it is lost it reconnects with backoff
 * (0.25 s doubling to 5 s), however long the database is away, and then says so (`onReconnect`).
 */
class ListenSubscription {
  private client: pg.Client | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private delayMs = 250;

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly onMessage: (payload: string) => void,
    private readonly onReconnect: () => void,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** The first connection: its failure is the caller's (start-up waits for the database first). */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const c = new pg.Client({ connectionString: this.url, application_name: 'confidant-listen', keepAlive: true });
    c.on('notification', (n) => n.channel === this.channel && this.onMessage(n.payload ?? ''));
    c.on('error', (err) => {
      this.onError(err);
      this.lost(c);
    });
    c.on('end', () => this.lost(c));
    try {
      await c.connect();
      await c.query(`listen ${this.channel}`);
    } catch (err) {
      c.removeAllListeners('end');
      c.on('error', () => {});
      destroySocket(c);
      throw err;
    }
    if (this.stopped) {
      await c.end().catch(() => {});
      return;
    }
    this.client = c;
    this.delayMs = 250;
  }

  private lost(c: pg.Client) {
    if (this.client !== c) return;
    this.client = undefined;
    c.removeAllListeners('end');
    c.on('error', () => {});
    destroySocket(c);
    this.retry();
  }

  private retry() {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect().then(
        () => {
          if (!this.stopped) this.onReconnect();
        },
        (err: unknown) => {
          this.onError(err);
          this.delayMs = Math.min(this.delayMs * 2, 5_000);
          this.retry();
        },
      );
    }, this.delayMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.client;
    this.client = undefined;
    if (c) {
      c.removeAllListeners('end');
      await c.end().catch(() => {});
    }
  }
}

/** The migrations applied, read in one statement (readiness: is the schema the one this code expects). */
async function readMigrations(kysely: Kysely<DB>): Promise<PingResult> {
  try {
    const { rows } = await sql<{ name: string }>`select name from confidant_migrations order by name`.execute(kysely);
    return { migrations: rows.map((r) => r.name) };
  } catch (err) {
    if (isSchemaMissing(err)) return { migrations: [] };
    throw err;
  }
}

/** undefined_table or insufficient_privilege on the migrations table: a database not (fully) migrated yet. */
function isSchemaMissing(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '42P01' || code === '42501';
}

import { createRequire } from 'node:module';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type PostgresQueryResult,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import pg from 'pg';
import { raceAbort } from './failures';

const require = createRequire(import.meta.url);
const { prepareValue } = require('pg/lib/utils.js') as { prepareValue: (v: unknown) => unknown };

/**
 * Markers the transaction runner puts in front of a statement (src/db/database.ts).
 * DEFER: hold it and send it in the same batch as the next real statement.
 * END: COMMIT or ROLLBACK; skipped when nothing of the transaction was ever sent.
 */
export const DEFER = '/*confidant:defer*/';
/** A statement that must run, held to travel with the transaction's END in one batch. */
export const AT_END = '/*confidant:at-end*/';
export const END = '/*confidant:end*/';
const MARKERS = [DEFER, AT_END, END];

export interface Statement {
  text: string;
  values: readonly unknown[];
  /** Held with AT_END: must run even though no later statement comes. */
  required?: boolean;
  /** Its rows are wanted (the batch's last statement always is). */
  describe?: boolean;
}

const EMPTY: PostgresQueryResult<never> = { command: 'SELECT', rowCount: 0, rows: [] };
const BEGIN_READ_ONLY: Statement = { text: 'begin read only', values: [] };
const COMMIT: Statement = { text: 'commit', values: [] };

/** Per physical connection (pool wrappers come and go). */
interface ConnectionState {
  /** Statement text → name of the server-side prepared statement on this connection. */
  prepared: Map<string, string>;
  /** Names ever issued on this connection (never reused, so a half-failed batch cannot clash). */
  issued: number;
}
const states = new WeakMap<pg.PoolClient, ConnectionState>();
function stateOf(client: pg.PoolClient): ConnectionState {
  let s = states.get(client);
  if (!s) states.set(client, (s = { prepared: new Map(), issued: 0 }));
  return s;
}

/**
 * Named prepared statements. Parsing, rewriting (row-level security policies, with the
 * principal functions inlined) and planning a statement cost the server far more than running
 * it (GET /api/profile's SELECT: about 135 µs of backend CPU unprepared, 15 µs prepared), so a
 * statement text seen again is prepared once per connection and then only bound and executed.
 * Row-level security is unchanged: the policies are part of the cached plan, the principal
 * functions they call are evaluated at execution, and PostgreSQL replans when the role or
 * row_security differ or a policy or table changes. Bounded per connection; texts past the
 * bound (or seen once, like one-off statements) stay unnamed as before.
 */
export const MAX_PREPARED_PER_CONNECTION = 200;
const seenTexts = new Set<string>();
function preparedName(state: ConnectionState, text: string): { name: string; parse: boolean } {
  const known = state.prepared.get(text);
  if (known) return { name: known, parse: false };
  if (!seenTexts.has(text)) {
    if (seenTexts.size >= 10_000) seenTexts.clear();
    seenTexts.add(text);
    return { name: '', parse: true };
  }
  if (state.issued >= MAX_PREPARED_PER_CONNECTION) return { name: '', parse: true };
  const name = `confidant_${++state.issued}`;
  state.prepared.set(text, name);
  return { name, parse: true };
}

/**
 * One extended-protocol batch: Parse (unless this connection has it prepared)/Bind/Execute for
 * each statement, Describe for the last one and those marked `describe` (the ones whose rows
 * someone reads; BEGIN, the principal settings, COMMIT return none), then a single Sync. One write, one round trip, parameters kept as parameters. An error
 * stops the batch at that statement (the backend skips to Sync).
 */
class PipelinedQuery extends (pg.Query as unknown as new (config: object, values?: unknown, cb?: unknown) => {
  prepare(connection: unknown): void;
}) {
  private readonly steps: { text: string; name: string; parse: boolean; values: unknown[]; describe: boolean }[];
  constructor(
    state: ConnectionState,
    statements: Statement[],
    callback: (err: Error | null, results: unknown) => void,
  ) {
    const main = statements[statements.length - 1]!;
    super({ text: main.text, values: main.values, queryMode: 'extended' }, undefined, callback);
    // Values are mapped before anything is written: a value that cannot be sent fails the
    // whole batch here, never half-way through the socket.
    const last = statements.length - 1;
    this.steps = statements.map((s, i) => {
      const { name, parse } = preparedName(state, s.text);
      return { text: s.text, name, parse, values: s.values.map((v) => prepareValue(v)), describe: i === last || s.describe === true };
    });
  }

  /** Names this batch asked the server to prepare (forgotten if the batch fails). */
  get parsedNames(): { text: string; name: string }[] {
    return this.steps.filter((s) => s.parse && s.name).map((s) => ({ text: s.text, name: s.name }));
  }

  override prepare(connection: {
    parse(m: object): void;
    bind(m: object): void;
    describe(m: object): void;
    execute(m: object): void;
    sync(): void;
  }) {
    const last = this.steps.length - 1;
    for (let i = 0; i <= last; i++) {
      const s = this.steps[i]!;
      if (s.parse) connection.parse({ text: s.text, name: s.name });
      connection.bind({ portal: '', statement: s.name, values: s.values });
      if (s.describe) connection.describe({ type: 'P', name: '' });
      connection.execute({ portal: '', rows: 0 });
    }
    connection.sync();
  }
}

/**
 * Sends `statements` as one batch; resolves with one result per statement, in order. pg opens a
 * new result at every CommandComplete after the first (and at every RowDescription that follows
 * one), and every statement that ran sends exactly one CommandComplete: so the results line up
 * with the statements, and a batch whose count differs is refused rather than guessed at.
 */
function runBatch(client: pg.PoolClient, statements: Statement[]): Promise<pg.QueryResult[]> {
  const state = stateOf(client);
  return new Promise((resolve, reject) => {
    const q: PipelinedQuery = new PipelinedQuery(state, statements, (err, results) => {
      if (err) {
        // Which of this batch's Parse messages succeeded is unknown: parse those texts again
        // next time, under new names.
        for (const p of q.parsedNames) if (state.prepared.get(p.text) === p.name) state.prepared.delete(p.text);
        return reject(err);
      }
      const all = (Array.isArray(results) ? results : [results]) as pg.QueryResult[];
      if (all.length !== statements.length) {
        return reject(new Error(`pipelined batch: ${statements.length} statements sent, ${all.length} results received`));
      }
      resolve(all);
    });
    client.query(q as unknown as pg.QueryConfig);
  });
}

async function runPipelined(client: pg.PoolClient, held: Statement[], main: Statement): Promise<PostgresQueryResult<unknown>> {
  const all = await runBatch(client, [...held, main]);
  const last = all[all.length - 1]!;
  return { command: last.command as PostgresQueryResult<unknown>['command'], rowCount: last.rowCount ?? 0, rows: last.rows };
}

/** What a transaction's Kysely handle runs its statements on (src/db/database.ts binds one). */
export interface StatementRunner {
  query<R>(text: string, values: readonly unknown[]): Promise<PostgresQueryResult<R>>;
}

/**
 * One lease of a pooled connection, as Kysely's DatabaseConnection. It pipelines a transaction's
 * opening (held statements travel with the first real one) and sends statements held for COMMIT
 * together with it. Once released it refuses every statement, so a transaction handle kept past
 * its end cannot run anything on a connection that now serves someone else.
 */
export class PipelinedConnection implements DatabaseConnection, StatementRunner {
  private held: Statement[] = [];
  private client: pg.PoolClient | undefined;
  /** Given up on (its request's deadline passed mid-statement): its socket is closed, and it never goes back to the pool. */
  private abandoned = false;
  /**
   * The batch carrying the transaction's opening (BEGIN, the principal) failed without the
   * server's word on it (a value that would not encode, a lost connection): the opening may never
   * have run, so no further statement may, lest it run outside any transaction and as nobody.
   */
  private unopened = false;

  constructor(client: pg.PoolClient) {
    this.client = client;
  }

  private live(): pg.PoolClient {
    if (!this.client) throw new Error('the transaction has ended: its connection was released');
    if (this.abandoned) throw new Error('Connection terminated: the transaction was abandoned');
    if (this.unopened) throw new Error('the transaction could not be opened: no further statement runs on its connection');
    return this.client;
  }

  /**
   * Closes the connection under a transaction that is being given up: the server sees the
   * client go and rolls back whatever it has not committed (a COMMIT it has already been sent may
   * still go through: the caller reports that outcome as unknown). Waiting on the statement is
   * not an option: the server may be frozen, and the pool must not get the connection back.
   */
  abandon(): void {
    if (this.abandoned || !this.client) return;
    this.abandoned = true;
    destroySocket(this.client);
  }

  /** Holds a statement to send in the same batch as the next one (BEGIN, the principal settings). */
  defer(text: string, values: readonly unknown[]): void {
    this.live();
    this.held.push({ text, values });
  }

  /** Ends the transaction. Statements held for COMMIT travel with it in one batch. */
  async end(how: 'commit' | 'rollback'): Promise<void> {
    const client = this.live();
    if (this.held.some((h) => h.required)) {
      // The held statements and the COMMIT (or ROLLBACK) in one batch: a lock taken by a held
      // statement is released by the COMMIT without waiting on a round trip to this process.
      const held = this.held;
      this.held = [];
      await runPipelined(client, held, { text: how, values: [] });
      return;
    }
    if (this.held.length > 0) {
      // Nothing of this transaction reached the server: there is nothing to end.
      this.held = [];
      return;
    }
    await client.query(how);
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const r = await this.query<R>(compiled.sql, compiled.parameters);
    const c = r.command;
    return c === 'INSERT' || c === 'UPDATE' || c === 'DELETE' || c === 'MERGE'
      ? { rows: r.rows ?? [], numAffectedRows: BigInt(r.rowCount ?? 0) }
      : { rows: r.rows ?? [] };
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not supported');
  }

  /** Statement texts may carry the markers above (src/db/database.ts puts them there). */
  async query<R>(text: string, values: readonly unknown[]): Promise<PostgresQueryResult<R>> {
    const client = this.live();
    if (text.startsWith(DEFER)) {
      this.held.push({ text: text.slice(DEFER.length), values });
      return EMPTY;
    }
    if (text.startsWith(AT_END)) {
      this.held.push({ text: text.slice(AT_END.length), values, required: true });
      return EMPTY;
    }
    if (text.startsWith(END)) {
      await this.end(text.slice(END.length) === 'rollback' ? 'rollback' : 'commit');
      return EMPTY;
    }
    const held = this.held;
    this.held = [];
    if (held.length > 0 || values.length > 0) {
      try {
        return (await runPipelined(client, held, { text, values })) as PostgresQueryResult<R>;
      } catch (err) {
        // An error the server raised (it has a SQLSTATE) came after the opening ran.
        if (held.length > 0 && !hasSqlState(err)) this.unopened = true;
        throw err;
      }
    }
    return (await client.query(text)) as unknown as PostgresQueryResult<R>;
  }

  release() {
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    this.held = [];
    // An abandoned connection is dropped by the pool, never handed to anyone else.
    client.release(this.abandoned ? new Error('abandoned') : undefined);
  }
}

function hasSqlState(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/** Closes a client's socket at once (end() would wait for a server that may never answer). */
export function destroySocket(client: pg.ClientBase): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

interface ReadItem {
  opening: readonly Statement[];
  text: string;
  values: readonly unknown[];
  /** The request's: a read it aborts before its batch is sent is never sent. */
  signal: AbortSignal | undefined;
  resolve: (r: PostgresQueryResult<unknown>) => void;
  reject: (err: unknown) => void;
}

/** Connections the read multiplexer keeps busy at most (of the pool's). */
export const READ_CONNECTIONS = 4;
/** Reads in one batch at most. */
export const READ_BATCH_MAX = 64;
/** A queue is split across idle connections only into batches at least this large. */
const READ_BATCH_SPLIT_MIN = 8;

/**
 * Multiplexed reads (the idea of Npgsql's multiplexing). Each statement of a read is its own
 * short transaction: BEGIN READ ONLY, the caller's principal settings, the statement, COMMIT.
 * Such transactions from concurrent requests travel together: one batch, one write, one round
 * trip and one backend wake-up for many requests, instead of one each. On a connection they run
 * one after the other, exactly as if each request had leased the connection in turn: each has
 * its own transaction, its settings are transaction-local and end at its COMMIT, and the next
 * one's BEGIN and settings come before its statement runs. Results are matched to requests by
 * position (see runBatch).
 *
 * At low load a batch is one read, sent on the next turn of the event loop; under load, what
 * queued while READ_CONNECTIONS batches were out. An error anywhere in a batch makes the server
 * skip the rest of it, so a failed batch of several reads is retried one read per batch (reads
 * are safe to repeat), and only the read that fails on its own gets the error.
 */
export class ReadMultiplexer {
  private queue: ReadItem[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly connections: number;

  constructor(
    private readonly pool: pg.Pool,
    poolSize: number,
  ) {
    this.connections = Math.max(1, Math.min(READ_CONNECTIONS, poolSize));
  }

  /**
   * Runs `text` in a read-only transaction opened by `opening` (after BEGIN READ ONLY). Once
   * `signal` aborts, the read rejects at once with `aborted()`; if it is still queued it is
   * never sent (one already sent finishes in its batch, and its rows are dropped).
   */
  run<R>(
    opening: readonly Statement[],
    text: string,
    values: readonly unknown[],
    signal?: AbortSignal,
    aborted?: () => Error,
  ): Promise<PostgresQueryResult<R>> {
    const queued = new Promise<PostgresQueryResult<unknown>>((resolve, reject) => {
      this.queue.push({ opening, text, values, signal, resolve, reject });
      this.schedule();
    }) as Promise<PostgresQueryResult<R>>;
    if (!signal || !aborted) return queued;
    return raceAbort(queued, signal, aborted);
  }

  private schedule() {
    if (this.scheduled || this.inFlight >= this.connections || this.queue.length === 0) return;
    this.scheduled = true;
    // The rest of this turn's I/O callbacks (other requests) may queue reads of their own.
    setImmediate(() => {
      this.scheduled = false;
      this.launch();
    });
  }

  private launch() {
    while (this.inFlight < this.connections && this.queue.length > 0) {
      const free = this.connections - this.inFlight;
      const size = Math.min(READ_BATCH_MAX, Math.max(READ_BATCH_SPLIT_MIN, Math.ceil(this.queue.length / free)));
      const batch = this.queue.splice(0, size).filter((item) => !item.signal?.aborted);
      if (batch.length === 0) continue;
      this.inFlight++;
      void this.send(batch, true).finally(() => {
        this.inFlight--;
        this.schedule();
      });
    }
  }

  private async send(batch: ReadItem[], retryAlone: boolean): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    const statements: Statement[] = [];
    for (const item of batch) {
      statements.push(BEGIN_READ_ONLY, ...item.opening, { text: item.text, values: item.values, describe: true }, COMMIT);
    }
    let results: pg.QueryResult[];
    try {
      results = await runBatch(client, statements);
    } catch (err) {
      // The batch may have stopped inside one of its transactions: end it before the connection
      // serves anyone else, or drop the connection.
      const clean = await client.query('rollback').then(
        () => true,
        () => false,
      );
      client.release(clean ? undefined : (err as Error));
      if (retryAlone && batch.length > 1) {
        await Promise.all(batch.map((item) => this.send([item], false)));
      } else {
        for (const item of batch) item.reject(err);
      }
      return;
    }
    client.release();
    let at = 0;
    for (const item of batch) {
      const r = results[at + 1 + item.opening.length]!;
      at += item.opening.length + 3;
      item.resolve({ command: r.command as PostgresQueryResult<unknown>['command'], rowCount: r.rowCount ?? 0, rows: r.rows });
    }
  }
}

/**
 * One read-only transaction's handle on the multiplexer: every statement runs as its own
 * read-only transaction under the same principal (see ReadMultiplexer). Refuses statements
 * once the read has ended, and refuses the write transaction's markers outright.
 */
export class MultiplexedRead implements DatabaseConnection, StatementRunner {
  private open = true;

  constructor(
    private readonly mux: ReadMultiplexer,
    private readonly opening: readonly Statement[],
    private readonly signal?: AbortSignal,
    private readonly aborted?: () => Error,
  ) {}

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const r = await this.query<R>(compiled.sql, compiled.parameters);
    return { rows: r.rows ?? [] };
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not supported');
  }

  query<R>(text: string, values: readonly unknown[]): Promise<PostgresQueryResult<R>> {
    if (!this.open) return Promise.reject(new Error('the read has ended'));
    if (MARKERS.some((m) => text.startsWith(m))) return Promise.reject(new Error('a read-only transaction cannot hold statements for its commit'));
    if (this.signal?.aborted && this.aborted) return Promise.reject(this.aborted());
    return this.mux.run<R>(this.opening, text, values, this.signal, this.aborted);
  }

  end() {
    this.open = false;
  }
}

/** Kysely's driver over a pg.Pool, handing out pipelined connections (one lease each). */
export class PipelineDriver implements Driver {
  constructor(private readonly pool: pg.Pool) {}

  async init() {}

  async acquireConnection(): Promise<PipelinedConnection> {
    return new PipelinedConnection(await this.pool.connect());
  }

  async beginTransaction(conn: DatabaseConnection, settings: TransactionSettings) {
    let text = settings.isolationLevel || settings.accessMode ? 'start transaction' : 'begin';
    if (settings.isolationLevel) text += ` isolation level ${settings.isolationLevel}`;
    if (settings.accessMode) text += ` ${settings.accessMode}`;
    await conn.executeQuery(CompiledQuery.raw(text));
  }

  async commitTransaction(conn: DatabaseConnection) {
    await conn.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(conn: DatabaseConnection) {
    await conn.executeQuery(CompiledQuery.raw('rollback'));
  }

  async releaseConnection(conn: DatabaseConnection) {
    (conn as PipelinedConnection).release();
  }

  async destroy() {
    await this.pool.end();
  }
}

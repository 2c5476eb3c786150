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

const require = createRequire(import.meta.url);
const { prepareValue } = require('pg/lib/utils.js') as { prepareValue: (v: unknown) => unknown };

/**
 * Markers the transaction runner puts in front of a statement (src/db/database.ts).
 * DEFER: hold it and send it in the same batch as the next real statement.
 * END: COMMIT or ROLLBACK; skipped when nothing of the transaction was ever sent.
 * NOWAIT: a read-only COMMIT. It has nothing to make durable, so it is not sent on its own:
 *   it travels at the front of the connection's next batch (COMMIT, then the next user's
 *   BEGIN), or after OWED_COMMIT_FLUSH_MS if the connection sits idle. Until then the read
 *   transaction stays open, holding nothing but its snapshot; its principal settings are
 *   transaction-local and end with it, before the next BEGIN.
 */
export const DEFER = '/*confidant:defer*/';
/** A statement that must run, held to travel with the transaction's END in one batch. */
export const AT_END = '/*confidant:at-end*/';
export const END = '/*confidant:end*/';
export const NOWAIT = '/*confidant:nowait*/';

interface Statement {
  text: string;
  values: readonly unknown[];
  /** Held with AT_END: must run even though no later statement comes. */
  required?: boolean;
}

const EMPTY: PostgresQueryResult<never> = { command: 'SELECT', rowCount: 0, rows: [] };
const COMMIT: Statement = { text: 'commit', values: [] };
/**
 * How long an idle connection may owe its read-only COMMIT. Under load a connection is reused
 * well within this, and the COMMIT rides in front of its next batch for free; every flush on its
 * own is one more write, wake-up and answer. 10 ms sent one for about one request in ten at 2,000
 * requests/s over 20 connections (pg-pool hands out the most recently used connection first, so
 * the others idle longer); 50 ms keeps them rare. The cost: an idle connection may keep a read
 * snapshot for up to 50 ms.
 */
export const OWED_COMMIT_FLUSH_MS = 50;
/** Idle connections that owe a COMMIT, with when they were released (at most the pools' sizes). */
const flushPending = new Map<pg.PoolClient, number>();
/**
 * One timer for all of them, running only while some connection owes (a timer per release cost
 * a Timeout object for every read).
 */
let sweeper: NodeJS.Timeout | undefined;
function sweep() {
  const due = performance.now() - OWED_COMMIT_FLUSH_MS;
  for (const [client, since] of flushPending) if (since <= due) void flushOwedCommit(client);
  if (flushPending.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

/** Per physical connection (pool wrappers come and go). */
interface ConnectionState {
  owesCommit: boolean;
  /** Statement text → name of the server-side prepared statement on this connection. */
  prepared: Map<string, string>;
  /** Names ever issued on this connection (never reused, so a half-failed batch cannot clash). */
  issued: number;
}
const states = new WeakMap<pg.PoolClient, ConnectionState>();
function stateOf(client: pg.PoolClient): ConnectionState {
  let s = states.get(client);
  if (!s) states.set(client, (s = { owesCommit: false, prepared: new Map(), issued: 0 }));
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

/** Takes the owed COMMIT, if any, so that the caller sends it first. */
function takeOwedCommit(client: pg.PoolClient): Statement[] {
  const s = stateOf(client);
  if (!s.owesCommit) return [];
  s.owesCommit = false;
  flushPending.delete(client);
  return [COMMIT];
}

/** Sends an owed COMMIT now, on its own. */
function flushOwedCommit(client: pg.PoolClient): Promise<void> {
  const owed = takeOwedCommit(client);
  // Errors surface on the client (a lost connection), which the pool then discards.
  return owed.length ? client.query(COMMIT.text).then(() => undefined, () => undefined) : Promise.resolve();
}

/**
 * One extended-protocol batch: Parse (unless this connection has it prepared)/Bind/Execute for
 * each statement, Describe for the last one only (the one whose rows the caller gets; the
 * statements in front of it, BEGIN, the principal, an owed COMMIT, return none that anyone
 * reads), then a single Sync. One write, one round trip, parameters kept as parameters. An error
 * stops the batch at that statement (the backend skips to Sync).
 */
class PipelinedQuery extends (pg.Query as unknown as new (config: object, values?: unknown, cb?: unknown) => {
  prepare(connection: unknown): void;
}) {
  private readonly steps: { text: string; name: string; parse: boolean; values: unknown[] }[];
  constructor(
    state: ConnectionState,
    statements: Statement[],
    callback: (err: Error | null, results: unknown) => void,
  ) {
    const main = statements[statements.length - 1]!;
    super({ text: main.text, values: main.values, queryMode: 'extended' }, undefined, callback);
    // Values are mapped before anything is written: a value that cannot be sent fails the
    // whole batch here, never half-way through the socket.
    this.steps = statements.map((s) => {
      const { name, parse } = preparedName(state, s.text);
      return { text: s.text, name, parse, values: s.values.map((v) => prepareValue(v)) };
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
      if (i === last) connection.describe({ type: 'P', name: '' });
      connection.execute({ portal: '', rows: 0 });
    }
    connection.sync();
  }
}

function runPipelined(client: pg.PoolClient, held: Statement[], main: Statement): Promise<PostgresQueryResult<unknown>> {
  const state = stateOf(client);
  return new Promise((resolve, reject) => {
    const q: PipelinedQuery = new PipelinedQuery(state, [...held, main], (err, results) => {
      if (err) {
        // Which of this batch's Parse messages succeeded is unknown: parse those texts again
        // next time, under new names.
        for (const p of q.parsedNames) if (state.prepared.get(p.text) === p.name) state.prepared.delete(p.text);
        return reject(err);
      }
      const all = (Array.isArray(results) ? results : [results]) as pg.QueryResult[];
      const last = all[all.length - 1]!;
      resolve({ command: last.command as PostgresQueryResult<unknown>['command'], rowCount: last.rowCount ?? 0, rows: last.rows });
    });
    client.query(q as unknown as pg.QueryConfig);
  });
}

/**
 * One lease of a pooled connection, as Kysely's DatabaseConnection. It pipelines a transaction's
 * opening (held statements travel with the first real one), sends statements held for COMMIT
 * together with it, and owes a read-only COMMIT to the connection's next batch (see NOWAIT).
 * Once released it refuses every statement, so a transaction handle kept past its end cannot
 * run anything on a connection that now serves someone else.
 */
export class PipelinedConnection implements DatabaseConnection {
  private held: Statement[] = [];
  private client: pg.PoolClient | undefined;

  constructor(client: pg.PoolClient) {
    this.client = client;
  }

  private live(): pg.PoolClient {
    if (!this.client) throw new Error('the transaction has ended: its connection was released');
    return this.client;
  }

  /** Holds a statement to send in the same batch as the next one (BEGIN, the principal settings). */
  defer(text: string, values: readonly unknown[]): void {
    this.live();
    this.held.push({ text, values });
  }

  /**
   * Ends the transaction: `commit`, `rollback`, or `commit-nowait` (a read-only COMMIT, owed to
   * the connection's next batch). Statements held for COMMIT travel with it in one batch.
   */
  async end(how: 'commit' | 'rollback' | 'commit-nowait'): Promise<void> {
    const client = this.live();
    const text = how === 'rollback' ? 'rollback' : 'commit';
    if (this.held.some((h) => h.required)) {
      // The held statements and the COMMIT (or ROLLBACK) in one batch: a lock taken by a held
      // statement is released by the COMMIT without waiting on a round trip to this process.
      const held = [...takeOwedCommit(client), ...this.held];
      this.held = [];
      await runPipelined(client, held, { text, values: [] });
      return;
    }
    if (this.held.length > 0) {
      // Nothing of this transaction reached the server: there is nothing to end.
      this.held = [];
      return;
    }
    if (how === 'commit-nowait') {
      stateOf(client).owesCommit = true;
      return;
    }
    await client.query(text);
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
      const end = text.slice(END.length);
      await this.end(end === 'rollback' ? 'rollback' : 'commit');
      return EMPTY;
    }
    if (text.startsWith(NOWAIT)) {
      await this.end('commit-nowait');
      return EMPTY;
    }
    const held = [...takeOwedCommit(client), ...this.held];
    this.held = [];
    if (held.length > 0 || values.length > 0) return (await runPipelined(client, held, { text, values })) as PostgresQueryResult<R>;
    return (await client.query(text)) as unknown as PostgresQueryResult<R>;
  }

  release() {
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    this.held = [];
    if (stateOf(client).owesCommit) {
      flushPending.set(client, performance.now());
      if (!sweeper) {
        sweeper = setInterval(sweep, OWED_COMMIT_FLUSH_MS / 2);
        sweeper.unref();
      }
    }
    client.release();
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
    // Settle owed read-only COMMITs before closing (ending a connection would roll them back,
    // which is harmless for a read, but a clean close is better for the server's logs). Only
    // idle connections owe one; flushing another pool's early is harmless too.
    await Promise.all([...flushPending.keys()].map(flushOwedCommit));
    await this.pool.end();
  }
}

import { createRequire } from 'node:module';
import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
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
export const OWED_COMMIT_FLUSH_MS = 10;

/** Per physical connection (pool wrappers come and go). */
interface ConnectionState {
  owesCommit: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Statement text → name of the server-side prepared statement on this connection. */
  prepared: Map<string, string>;
  /** Names ever issued on this connection (never reused, so a half-failed batch cannot clash). */
  issued: number;
}
const states = new WeakMap<pg.PoolClient, ConnectionState>();
function stateOf(client: pg.PoolClient): ConnectionState {
  let s = states.get(client);
  if (!s) states.set(client, (s = { owesCommit: false, timer: undefined, prepared: new Map(), issued: 0 }));
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
  if (s.timer) clearTimeout(s.timer);
  s.timer = undefined;
  return [COMMIT];
}

/**
 * One extended-protocol batch: Parse (unless this connection has it prepared)/Bind/Describe/
 * Execute for each statement, then a single Sync. One write, one round trip, parameters kept
 * as parameters. An error stops the batch at that statement (the backend skips to Sync).
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
    for (const s of this.steps) {
      if (s.parse) connection.parse({ text: s.text, name: s.name });
      connection.bind({ portal: '', statement: s.name, values: s.values });
      connection.describe({ type: 'P', name: '' });
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

class PipeliningClient {
  private held: Statement[] = [];
  constructor(private readonly client: pg.PoolClient) {}

  async query<R>(text: string, values: readonly unknown[]): Promise<PostgresQueryResult<R>> {
    if (text.startsWith(DEFER)) {
      this.held.push({ text: text.slice(DEFER.length), values });
      return EMPTY;
    }
    if (text.startsWith(AT_END)) {
      this.held.push({ text: text.slice(AT_END.length), values, required: true });
      return EMPTY;
    }
    if (text.startsWith(END) || text.startsWith(NOWAIT)) {
      const end = text.slice((text.startsWith(END) ? END : NOWAIT).length);
      if (this.held.some((h) => h.required)) {
        // The held statements and the COMMIT (or ROLLBACK) in one batch: a lock taken by a held
        // statement is released by the COMMIT without waiting on a round trip to this process.
        const held = [...takeOwedCommit(this.client), ...this.held];
        this.held = [];
        return (await runPipelined(this.client, held, { text: end, values: [] })) as PostgresQueryResult<R>;
      }
      if (this.held.length > 0) {
        // Nothing of this transaction reached the server: there is nothing to end.
        this.held = [];
        return EMPTY;
      }
      if (text.startsWith(NOWAIT)) {
        stateOf(this.client).owesCommit = true;
        return EMPTY;
      }
      return (await this.client.query(text.slice(END.length))) as unknown as PostgresQueryResult<R>;
    }
    const held = [...takeOwedCommit(this.client), ...this.held];
    this.held = [];
    if (held.length > 0 || values.length > 0) return (await runPipelined(this.client, held, { text, values })) as PostgresQueryResult<R>;
    return (await this.client.query(text)) as unknown as PostgresQueryResult<R>;
  }

  release() {
    this.held = [];
    const client = this.client;
    const s = stateOf(client);
    if (s.owesCommit && !s.timer) {
      s.timer = setTimeout(() => {
        s.timer = undefined;
        const owed = takeOwedCommit(client);
        // Errors surface on the client (a lost connection), which the pool then discards.
        if (owed.length) client.query(COMMIT.text).catch(() => {});
      }, OWED_COMMIT_FLUSH_MS);
      s.timer.unref();
    }
    client.release();
  }
}

/** A pg.Pool as Kysely sees it, handing out connections that pipeline a transaction's opening. */
export function pipeliningPool(pool: pg.Pool): PostgresPool {
  return {
    connect: async () => new PipeliningClient(await pool.connect()) as unknown as PostgresPoolClient,
    end: async () => {
      // Settle owed read-only COMMITs before closing (ending a connection would roll them back,
      // which is harmless for a read, but a clean close is better for the server's logs).
      await new Promise((r) => setTimeout(r, OWED_COMMIT_FLUSH_MS * 2));
      await pool.end();
    },
  };
}

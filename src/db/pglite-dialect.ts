import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
} from 'kysely';
import type { EmbeddedPostgres } from './embedded-pglite';

/** What the dialect needs of the embedded database (EmbeddedPGlite on its worker, or InThreadPGlite). */
export type EmbeddedSql = Pick<EmbeddedPostgres, 'query' | 'exec' | 'generation'>;

/**
 * A Kysely dialect over one embedded PGlite instance. PGlite has a single
 * connection, so the driver hands it out to one user at a time: a transaction
 * holds it from BEGIN to COMMIT and nobody else's statements interleave.
 * Each hand-out is bound to the database's current generation: if the embedded
 * database is replaced meanwhile (its worker died and was respawned), the rest of
 * that transaction is refused rather than run on the new one outside any transaction.
 */
export class PGliteDialect implements Dialect {
  constructor(private readonly pglite: EmbeddedSql) {}
  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new PGliteDriver(this.pglite);
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}

class PGliteDriver implements Driver {
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly pglite: EmbeddedSql) {}

  async init() {}

  /**
   * A lease of the one connection, a fresh handle each time: once released, the handle refuses
   * statements, so a stray query from a finished transaction (one branch of a Promise.all still
   * running after another threw) can never run inside the next caller's transaction, as that
   * caller's principal. The PostgreSQL path refuses the same (src/db/pg-pipeline.ts).
   */
  async acquireConnection(): Promise<DatabaseConnection> {
    let release!: () => void;
    const previous = this.tail;
    this.tail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    return new PGliteLease(this.pglite, this.pglite.generation, release);
  }

  async beginTransaction(conn: DatabaseConnection) {
    await conn.executeQuery(CompiledQuery.raw('begin'));
  }
  async commitTransaction(conn: DatabaseConnection) {
    await conn.executeQuery(CompiledQuery.raw('commit'));
  }
  async rollbackTransaction(conn: DatabaseConnection) {
    await conn.executeQuery(CompiledQuery.raw('rollback'));
  }
  async releaseConnection(conn: DatabaseConnection) {
    (conn as PGliteLease).end();
  }
  async destroy() {}
}

class PGliteLease implements DatabaseConnection {
  private ended = false;

  constructor(
    private readonly pglite: EmbeddedSql,
    private readonly generation: number,
    private readonly release: () => void,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (this.ended) throw new Error('the transaction has ended: its connection was released');
    const at = { generation: this.generation };
    // Without parameters the simple protocol runs several statements at once (migrations).
    const result =
      query.parameters.length === 0 ? await this.pglite.exec(query.sql, at) : await this.pglite.query(query.sql, query.parameters, at);
    const affected = result.affectedRows;
    return {
      rows: result.rows as R[],
      ...(affected !== undefined ? { numAffectedRows: BigInt(affected) } : {}),
    };
  }

  end() {
    if (this.ended) return;
    this.ended = true;
    this.release();
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('PGlite dialect does not stream');
  }
}

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
  private readonly connection: PGliteConnection;

  constructor(private readonly pglite: EmbeddedSql) {
    this.connection = new PGliteConnection(pglite);
  }

  async init() {}

  async acquireConnection(): Promise<DatabaseConnection> {
    let release!: () => void;
    const previous = this.tail;
    this.tail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    this.connection.release = release;
    this.connection.generation = this.pglite.generation;
    return this.connection;
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
    (conn as PGliteConnection).release?.();
  }
  async destroy() {}
}

class PGliteConnection implements DatabaseConnection {
  release: (() => void) | undefined;
  generation = 0;
  constructor(private readonly pglite: EmbeddedSql) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
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

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('PGlite dialect does not stream');
  }
}

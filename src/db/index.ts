// The only door to the database. Nothing outside src/db imports a database client
// (pg, PGlite, kysely); a test enforces it.
export {
  compileOnce,
  executeAtCommit,
  openDatabase,
  sqlStatement,
  DEFAULT_PG_TIMEOUTS,
  type Database,
  type DatabaseObserver,
  type DatabaseOptions,
  type PingResult,
  type PostgresTimeouts,
  type TransactionOptions,
  type RoleReport,
  type Statement,
  type Tx,
  type TxPrincipal,
} from './database';
export type { DB } from './schema';
export type { Selectable } from 'kysely';
export { sql } from 'kysely';
export { DataDirInUse } from './data-dir-lock';
export {
  abortWhy,
  classifyDatabaseError,
  CommitOutcomeUnknown,
  DeadlineExceeded,
  raceAbort,
  stoppedError,
  type AbortWhy,
  type DatabaseFailure,
} from './failures';
export { listMigrations } from './migrate';

/** True when `err` is PostgreSQL's unique_violation (on `constraint`, when given), from either driver. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; constraint?: unknown; message?: unknown };
  if (e.code !== '23505') return false;
  if (!constraint) return true;
  return e.constraint === constraint || (typeof e.message === 'string' && e.message.includes(`"${constraint}"`));
}

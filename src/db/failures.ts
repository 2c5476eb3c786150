/**
 * How the database can fail a request, as the rest of the service needs to know it: the
 * database is gone, the request ran out of time, a COMMIT's outcome is unknown, or the disk is
 * full. Everything else a driver throws is either the caller's data (SQLSTATE class 22), a
 * constraint the service expects (unique violations), or a bug.
 */

/** The request's deadline passed, or its client went away, before the transaction committed: nothing was written. */
export class DeadlineExceeded extends Error {
  override readonly name = 'DeadlineExceeded';
  constructor(readonly why: 'deadline' | 'client_gone') {
    super(why === 'deadline' ? 'the request ran past its deadline' : 'the client went away');
  }
}

/**
 * The COMMIT was sent but its answer never came (the connection broke, or the deadline passed
 * while waiting for it): the transaction may or may not have committed.
 */
export class CommitOutcomeUnknown extends Error {
  override readonly name = 'CommitOutcomeUnknown';
  constructor(override readonly cause?: unknown) {
    super('the database connection was lost while committing');
  }
}

/**
 * COMMITs in flight per request signal: whoever answers a request at its deadline must say
 * "outcome unknown", not "nothing was changed", while one of its commits is awaited.
 */
const committing = new WeakMap<AbortSignal, number>();

export function markCommitting(signal: AbortSignal | undefined, delta: 1 | -1): void {
  if (!signal) return;
  committing.set(signal, (committing.get(signal) ?? 0) + delta);
}

/** The error for a request stopped by `signal`: an unknown outcome while a COMMIT is awaited, else nothing was done. */
export function stoppedError(signal: AbortSignal): Error {
  return (committing.get(signal) ?? 0) > 0 ? new CommitOutcomeUnknown() : new DeadlineExceeded(abortWhy(signal));
}

/** Why a request's signal was aborted: `AbortController.abort(reason)` carries one of these. */
export type AbortWhy = 'deadline' | 'client_gone';

export function abortWhy(signal: AbortSignal): AbortWhy {
  return signal.reason === 'client_gone' ? 'client_gone' : 'deadline';
}

export type DatabaseFailure = 'unavailable' | 'timeout' | 'storage_full';

// pg's own messages for a connection that is gone (it sets no code on them).
const LOST_CONNECTION = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
  'Cannot use a pool after calling end on the pool',
  'the transaction has ended: its connection was released',
];
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * Classifies a database or storage error. `unavailable`: the connection or the server is gone
 * (SQLSTATE class 08, shutdown 57P01–57P03, too many connections 53300, or a socket error);
 * `timeout`: the server gave up on a statement, a lock or an idle transaction (57014, 55P03,
 * 25P03); `storage_full`: disk full (53100, ENOSPC, EDQUOT). Anything else: null.
 */
export function classifyDatabaseError(err: unknown): DatabaseFailure | null {
  if (typeof err !== 'object' || err === null) return null;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code === '53100' || code === 'ENOSPC' || code === 'EDQUOT') return 'storage_full';
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return 'unavailable';
    if (code === '57014' || code === '55P03' || code === '25P03') return 'timeout';
    if (NETWORK_CODES.has(code)) return 'unavailable';
  }
  const message = (err as { message?: unknown }).message;
  if (typeof message === 'string' && LOST_CONNECTION.some((m) => message.startsWith(m))) return 'unavailable';
  // An AggregateError from a failed connect to several addresses (localhost → ::1 and 127.0.0.1).
  const errors = (err as { errors?: unknown }).errors;
  if (Array.isArray(errors) && errors.length > 0 && errors.every((e) => classifyDatabaseError(e) === 'unavailable')) return 'unavailable';
  return null;
}

/** True when the error says the connection itself is gone (so a COMMIT in flight has an unknown outcome). */
export function isConnectionLoss(err: unknown): boolean {
  return classifyDatabaseError(err) === 'unavailable';
}

/**
 * Resolves or rejects with `work`, unless `signal` aborts first: then rejects at once with
 * `onAbort()`'s error. `work` goes on in the background; `late` gets its result if it arrives
 * after the abort (to release what it acquired).
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal | undefined, onAbort: () => Error, late?: (value: T) => void): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.then(late, () => undefined);
    return Promise.reject(onAbort());
  }
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const abort = () => {
      if (settled) return;
      settled = true;
      reject(onAbort());
    };
    signal.addEventListener('abort', abort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        if (settled) return late?.(v);
        settled = true;
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort);
        if (settled) return;
        settled = true;
        reject(e);
      },
    );
  });
}

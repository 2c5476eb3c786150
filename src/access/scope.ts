import { appendAuditEvents, AUDIT_WAKE_CHANNEL, toAuditRow, type AuditInput } from '../audit/audit-log';
import { AuditGroupCommit } from '../audit/group-commit';
import { abortWhy, DeadlineExceeded, raceAbort, sql, type Database, type Tx, type TxPrincipal } from '../db';
import { system, type Principal } from './principal';
import type { RequestContext } from './request-context';

/**
 * What every service receives: who is asking, from where, and a transaction that
 * already runs as that principal under row-level security. Never the raw database.
 */
export interface Scope {
  readonly principal: Principal;
  readonly request: RequestContext;
  readonly tx: Tx;
  /** Records an audit event; it is appended in this same transaction, just before commit. */
  audit(event: AuditInput): void;
  /** Runs once the transaction has committed (cache invalidation, notifications). */
  afterCommit(fn: () => void): void;
}

export interface RunOptions {
  /**
   * A read: the transaction is READ ONLY (the database refuses any write in it) and its
   * audit events are group-committed right after it, before the caller gets the result.
   */
  readOnly?: boolean;
}

export interface Scopes {
  run<T>(principal: Principal, request: RequestContext, fn: (scope: Scope) => Promise<T>, opts?: RunOptions): Promise<T>;
  /** System work (jobs, CLI, sign-in) names its reason; it is audited like any other. */
  system<T>(reason: string, request: RequestContext, fn: (scope: Scope) => Promise<T>): Promise<T>;
  /** A denial is recorded in a transaction of its own, after the attempt was rolled back. */
  recordDenial(principal: Principal, request: RequestContext, event: AuditInput): Promise<void>;
  /** Waits until every queued audit event is durable. */
  close(): Promise<void>;
}

export function toTxPrincipal(p: Principal): TxPrincipal {
  switch (p.kind) {
    case 'anonymous':
      return { kind: 'anonymous', id: null, role: null, sessionId: null, reason: null };
    case 'system':
      return { kind: 'system', id: null, role: null, sessionId: null, reason: p.reason };
    case 'pending':
      // Half signed in: the database sees only "pending", never the account's kind or role, so
      // every policy keyed on a kind or role (a DPO's audit access) stays shut until MFA is done.
      return { kind: 'pending', id: p.accountId, role: null, sessionId: p.sessionId, reason: null };
    case 'staff':
      return { kind: 'staff', id: p.accountId, role: p.role, sessionId: p.sessionId, reason: null };
    default:
      return { kind: p.kind, id: p.accountId, role: null, sessionId: p.sessionId, reason: null };
  }
}

export function createScopes(db: Database, opts: { onAuditBatch?: ConstructorParameters<typeof AuditGroupCommit>[2] } = {}): Scopes {
  const groupCommit = new AuditGroupCommit(db, 1000, opts.onAuditBatch);

  async function run<T>(principal: Principal, request: RequestContext, fn: (scope: Scope) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    const events: AuditInput[] = [];
    const after: (() => void)[] = [];
    const readOnly = opts.readOnly ?? false;
    const signal = request.signal;
    const result = await db.transaction(toTxPrincipal(principal), async (tx) => {
      const scope: Scope = {
        principal,
        request,
        tx,
        audit: (e) => void events.push(e),
        afterCommit: (f) => void after.push(f),
      };
      const out = await fn(scope);
      if (!readOnly) {
        // A write and its audit events commit together or not at all. Last statement before
        // COMMIT, so the chain head's row lock is held as briefly as possible.
        await appendAuditEvents(
          tx,
          events.map((e) => toAuditRow(principal, request, e)),
        );
      }
      return out;
    }, { readOnly, signal });
    // A read's events: durable before anyone sees what was read. Past the deadline nobody will
    // see it; the events may still be written (they then record a read that was not answered).
    if (readOnly) {
      const appended = groupCommit.append(events.map((e) => toAuditRow(principal, request, e)));
      await raceAbort(appended, signal, () => new DeadlineExceeded(abortWhy(signal!)));
    }
    for (const f of after) f();
    return result;
  }

  return {
    run,
    system: (reason, request, fn) => run(system(reason), request, fn),
    recordDenial: async (principal, request, event) => {
      // Not bound to the request's signal: a denial is recorded even when its client has gone.
      await db.transaction(toTxPrincipal(principal), async (tx) => {
        // A failure (a layer stopped a cross-patient response, data failed its integrity check):
        // every process's detector is told to look now rather than at its next poll. It reads
        // the audit chain either way; this only hurries it. Sent on commit.
        if (event.outcome === 'failure') await sql`select pg_notify(${AUDIT_WAKE_CHANNEL}, '')`.execute(tx);
        await appendAuditEvents(tx, [toAuditRow(principal, request, { ...event, outcome: event.outcome ?? 'denied' })]);
      });
    },
    close: () => groupCommit.close(),
  };
}

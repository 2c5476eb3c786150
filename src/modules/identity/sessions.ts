import { hash, randomUUID } from 'node:crypto';
import type { Principal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import type { Scope, Scopes } from '../../access/scope';
import { classifyDatabaseError, sql } from '../../db';
import { hashSessionToken, isPlausibleToken, newSessionToken, csrfTokenFor } from './session-tokens';
import { insertSession, peekSessionByHash, resolveSessionByHash, type ResolvedSession } from './identity-repo';

export const SESSION_CHANNEL = 'confidant_sessions';

export interface SessionPolicy {
  idleMs: number;
  absoluteMs: number;
}

export interface IssuedSession {
  token: string;
  csrfToken: string;
  sessionId: string;
  stage: 'full' | 'mfa' | 'enrol';
  expiresAt: Date;
}

export interface AuthenticatedSession {
  principal: Exclude<Principal, { kind: 'anonymous' } | { kind: 'system' }>;
  displayName: string;
  expiresAt: Date;
  token: string;
}

interface CacheEntry {
  session: AuthenticatedSession;
  accountId: string;
  fetchedAt: number;
  lastActivity: number;
}

/**
 * Session lookups, cached per process for a few seconds. Revocations clear the entry
 * at once here and, through NOTIFY on commit, in every other process.
 */
export class SessionDirectory {
  private readonly cache = new Map<string, CacheEntry>();
  /**
   * Moves on at every revocation (and clear). A lookup that was under way when one arrived does
   * not cache what it read: it may have read the session just before the revocation committed,
   * and caching it would keep a revoked session alive for the cache's lifetime.
   */
  private generation = 0;

  constructor(
    private readonly scopes: Scopes,
    readonly policy: SessionPolicy,
    private readonly ttlMs = 10_000,
    private readonly maxEntries = 50_000,
  ) {}

  async authenticate(token: string | undefined, request: RequestContext): Promise<AuthenticatedSession | null> {
    if (!token || !isPlausibleToken(token)) return null;
    // The token's SHA-256 (what the database stores), one-shot: this runs for every request.
    const key = hash('sha256', token, 'base64');
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit) {
      const expired = now - hit.lastActivity > this.policy.idleMs || now >= hit.session.expiresAt.getTime();
      if (!expired && now - hit.fetchedAt < this.ttlMs) {
        hit.lastActivity = now;
        return hit.session;
      }
      this.cache.delete(key);
    }
    const tokenHash = hashSessionToken(token);
    const idleSeconds = Math.floor(this.policy.idleMs / 1000);
    const startedAt = this.generation;
    const row = await this.scopes
      .run({ kind: 'anonymous' }, request, (scope) => resolveSessionByHash(scope.tx, tokenHash, idleSeconds))
      .catch((err: unknown) => {
        // A full disk takes no write, not even the last-seen stamp: the caller is still who they
        // are, so reads that need no write are served (their idle time is not extended meanwhile).
        if (classifyDatabaseError(err) !== 'storage_full') throw err;
        return this.scopes.run({ kind: 'anonymous' }, request, (scope) => peekSessionByHash(scope.tx, tokenHash, idleSeconds), { readOnly: true });
      });
    if (!row) return null;
    const session: AuthenticatedSession = {
      principal: principalFor(row),
      displayName: row.display_name,
      expiresAt: new Date(row.absolute_expires_at),
      token,
    };
    // Answered from the database as it was; cached only if no revocation arrived meanwhile.
    if (startedAt !== this.generation) return session;
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    this.cache.set(key, { session, accountId: row.account_id, fetchedAt: now, lastActivity: now });
    return session;
  }

  /** Called for every revocation message, local or from another process. */
  forget(message: { accountId: string; sessionIds: string[] | 'all' }) {
    this.generation++;
    for (const [key, entry] of this.cache) {
      if (entry.accountId !== message.accountId) continue;
      if (message.sessionIds === 'all' || message.sessionIds.includes(entry.session.principal.sessionId)) {
        this.cache.delete(key);
      }
    }
  }

  clear() {
    this.generation++;
    this.cache.clear();
  }
}

function principalFor(row: ResolvedSession): AuthenticatedSession['principal'] {
  const base = { accountId: row.account_id, sessionId: row.session_id };
  if (row.stage !== 'full') {
    return { kind: 'pending', stage: row.stage, accountKind: row.kind, role: row.staff_role, ...base };
  }
  if (row.kind === 'staff') return { kind: 'staff', role: row.staff_role!, ...base };
  return { kind: row.kind, ...base };
}

/** Creates a session for the scope's own account; the caller sets the cookie. */
export async function startSession(
  scope: Scope,
  accountId: string,
  stage: 'full' | 'mfa' | 'enrol',
  policy: SessionPolicy,
  sessionId: string = randomUUID(),
): Promise<IssuedSession> {
  const { token, hash } = newSessionToken();
  const expiresAt = new Date(Date.now() + policy.absoluteMs);
  await insertSession(scope.tx, {
    id: sessionId,
    tokenHash: hash,
    accountId,
    stage,
    absoluteExpiresAt: expiresAt,
    clientIp: scope.request.clientIp,
    userAgent: scope.request.userAgent,
  });
  scope.audit({ action: 'session.create', objectType: 'session', objectId: sessionId, details: { stage } });
  return { token, csrfToken: csrfTokenFor(token), sessionId, stage, expiresAt };
}

/**
 * Tells every process to drop cached sessions: this one the moment the revocation commits
 * (NOTIFY comes back on another connection, possibly after the response has gone out), the
 * others through NOTIFY, which PostgreSQL delivers only if the transaction commits.
 */
export async function announceRevocation(scope: Scope, directory: SessionDirectory, accountId: string, sessionIds: string[] | 'all') {
  const message = { accountId, sessionIds };
  await sql`select pg_notify(${SESSION_CHANNEL}, ${JSON.stringify(message)})`.execute(scope.tx);
  scope.afterCommit(() => directory.forget(message));
}

import type { Tx } from '../../db';
import { sql } from '../../db';

// Queries for the identity area. Each one also states its owner predicate even where
// row-level security would already filter: two independent fences, not one.

export type LoginRecord = {
  id: string;
  kind: 'patient' | 'clinician' | 'staff';
  staff_role: 'dpo' | 'admin' | null;
  display_name: string;
  mfa_enabled_at: Date | null;
  mfa_required: boolean;
  disabled_at: Date | null;
  password_hash: string;
};

/** System scope only (sign-in): the account behind an email, with its password hash. */
export function findLoginByEmail(tx: Tx, email: string): Promise<LoginRecord | undefined> {
  return tx
    .selectFrom('accounts as a')
    .innerJoin('account_credentials as c', 'c.account_id', 'a.id')
    .select(['a.id', 'a.kind', 'a.staff_role', 'a.display_name', 'a.mfa_enabled_at', 'a.mfa_required', 'a.disabled_at', 'c.password_hash'])
    .where('a.email', '=', email)
    .executeTakeFirst();
}

export function findOwnAccount(tx: Tx, accountId: string) {
  return tx.selectFrom('accounts').selectAll().where('id', '=', accountId).executeTakeFirst();
}

export function findOwnCredentials(tx: Tx, accountId: string) {
  return tx.selectFrom('account_credentials').selectAll().where('account_id', '=', accountId).executeTakeFirst();
}

export async function insertSession(
  tx: Tx,
  s: { id: string; tokenHash: Buffer; accountId: string; stage: 'full' | 'mfa' | 'enrol'; absoluteExpiresAt: Date; clientIp: string | null; userAgent: string | null },
) {
  await tx
    .insertInto('sessions')
    .values({
      id: s.id,
      token_hash: s.tokenHash,
      account_id: s.accountId,
      stage: s.stage,
      last_seen_at: new Date(),
      absolute_expires_at: s.absoluteExpiresAt,
      client_ip: s.clientIp,
      user_agent: s.userAgent?.slice(0, 300) ?? null,
    })
    .execute();
}

/** Revokes sessions of one account; returns the ids revoked. */
export async function revokeSessions(
  tx: Tx,
  accountId: string,
  reason: string,
  only?: { sessionId?: string; exceptSessionId?: string },
): Promise<string[]> {
  let q = tx
    .updateTable('sessions')
    .set({ revoked_at: new Date(), revoked_reason: reason })
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null);
  if (only?.sessionId) q = q.where('id', '=', only.sessionId);
  if (only?.exceptSessionId) q = q.where('id', '<>', only.exceptSessionId);
  const rows = await q.returning('id').execute();
  return rows.map((r) => r.id);
}

export function listOwnSessions(tx: Tx, accountId: string, idleMs: number) {
  return tx
    .selectFrom('sessions')
    .select(['id', 'created_at', 'last_seen_at', 'client_ip', 'user_agent', 'stage'])
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null)
    .where('absolute_expires_at', '>', new Date())
    .where('last_seen_at', '>', new Date(Date.now() - idleMs))
    .orderBy('last_seen_at', 'desc')
    .execute();
}

export type ResolvedSession = {
  session_id: string;
  account_id: string;
  kind: 'patient' | 'clinician' | 'staff';
  staff_role: 'dpo' | 'admin' | null;
  stage: 'full' | 'mfa' | 'enrol';
  display_name: string;
  absolute_expires_at: Date;
};

/** The session behind a token hash, if live; also marks it seen (idle timeout). */
export async function resolveSessionByHash(tx: Tx, tokenHash: Buffer, idleSeconds: number) {
  const { rows } = await sql<ResolvedSession>`select * from confidant_resolve_session(${tokenHash}, ${idleSeconds})`.execute(tx);
  return rows[0];
}

/** The same lookup without the last-seen stamp (a write): for when the disk is full. */
export async function peekSessionByHash(tx: Tx, tokenHash: Buffer, idleSeconds: number) {
  const { rows } = await sql<ResolvedSession>`select * from confidant_peek_session(${tokenHash}, ${idleSeconds})`.execute(tx);
  return rows[0];
}

export async function countRecentFailures(tx: Tx, keyHashes: Buffer[], since: Date) {
  const rows = await tx
    .selectFrom('sign_in_failures')
    .select(['key_hash', (eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.min('failed_at').as('oldest')])
    .where('key_hash', 'in', keyHashes)
    .where('failed_at', '>', since)
    .groupBy('key_hash')
    .execute();
  return rows.map((r) => ({ keyHash: Buffer.from(r.key_hash), count: Number(r.n), oldest: r.oldest as Date }));
}

/** Serialises attempts on these keys for the rest of the transaction (count, then record). */
export async function lockThrottleKeys(tx: Tx, keyHashes: Buffer[]) {
  for (const k of [...keyHashes].sort(Buffer.compare)) {
    await sql`select pg_advisory_xact_lock(hashtextextended(${k.toString('hex')}, 7206115))`.execute(tx);
  }
}

export async function recordAttempt(tx: Tx, keyHashes: Buffer[]): Promise<string[]> {
  const rows = await tx.insertInto('sign_in_failures').values(keyHashes.map((k) => ({ key_hash: k }))).returning('id').execute();
  return rows.map((r) => r.id);
}

/** A successful attempt: the account's count starts again, and this attempt's own rows go. */
export async function settleAttempt(tx: Tx, accountKey: Buffer, attemptIds: string[]) {
  await tx
    .deleteFrom('sign_in_failures')
    .where((eb) => eb.or([eb('key_hash', '=', accountKey), ...(attemptIds.length ? [eb('id', 'in', attemptIds)] : [])]))
    .execute();
}

export async function pruneFailures(tx: Tx, before: Date) {
  await tx.deleteFrom('sign_in_failures').where('failed_at', '<', before).execute();
}

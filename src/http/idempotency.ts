import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Scope } from '../access/scope';
import { sql } from '../db';
import { AppError } from '../errors';

/**
 * Idempotency-Key (the IETF httpapi draft's header, as Stripe and others use it). A client that
 * did not hear the answer to a state-changing request (its connection dropped, or the server said
 * `outcome_unknown`) sends it again with the same key; if the first attempt committed, the
 * retry gets that attempt's answer and changes nothing. The key's row is written in the same
 * transaction as the change, so the row exists exactly when the change does.
 */
export const IDEMPOTENCY_HEADER = 'idempotency-key';
const KEY_PATTERN = /^[A-Za-z0-9_.:-]{1,100}$/;

export interface IdempotentRequest {
  key: string;
  route: string;
  fingerprint: Buffer;
}

export interface StoredAnswer {
  status: number;
  body: unknown;
  patientIds: string[];
}

/** The request's key, if it sent one; a malformed key is refused rather than ignored. */
export function idempotentRequestOf(
  headers: IncomingHttpHeaders,
  route: string,
  request: { params: unknown; body: unknown },
): IdempotentRequest | undefined {
  const raw = headers[IDEMPOTENCY_HEADER];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !KEY_PATTERN.test(raw)) {
    throw new AppError('validation_failed', 'The Idempotency-Key header must be 1 to 100 letters, digits or . _ : -', {
      issues: [{ path: 'Idempotency-Key', message: 'must be 1 to 100 letters, digits or . _ : -' }],
    });
  }
  const fingerprint = createHash('sha256')
    .update(route)
    .update('\0')
    .update(JSON.stringify(request.params ?? null))
    .update('\0')
    .update(JSON.stringify(request.body ?? null))
    .digest();
  return { key: raw, route, fingerprint };
}

function ownerOf(scope: Scope): string {
  const p = scope.principal;
  if (p.kind === 'patient' || p.kind === 'clinician' || p.kind === 'staff') return p.accountId;
  throw new Error('idempotency keys are for signed-in callers');
}

/**
 * Claims the key for this transaction. Returns the first attempt's answer when one committed
 * (on PostgreSQL a concurrent attempt holding the key is waited for: its row lock decides).
 * The same key sent with another request is refused (`idempotency_key_reused`).
 */
export async function claimIdempotencyKey(scope: Scope, req: IdempotentRequest): Promise<StoredAnswer | null> {
  const owner = ownerOf(scope);
  const claimed = await sql<{ key: string }>`
    insert into idempotency_keys (principal_id, key, route, fingerprint)
    values (${owner}, ${req.key}, ${req.route}, ${req.fingerprint})
    on conflict (principal_id, key) do nothing
    returning key`.execute(scope.tx);
  if (claimed.rows.length > 0) return null;
  const { rows } = await sql<{ fingerprint: Buffer; status: number | null; response: unknown; patient_ids: string[] }>`
    select fingerprint, status, response, patient_ids from idempotency_keys
    where principal_id = ${owner} and key = ${req.key}`.execute(scope.tx);
  const row = rows[0];
  // Committed rows always carry their answer (it is written before COMMIT, in the same transaction).
  if (!row || row.status === null) throw new Error('idempotency key row without its answer');
  if (!Buffer.from(row.fingerprint).equals(req.fingerprint)) {
    throw new AppError('idempotency_key_reused', 'This Idempotency-Key was already used for a different request. Send a new key for a new request.');
  }
  return { status: row.status, body: row.response, patientIds: row.patient_ids };
}

/** Stores the answer with the key, in the transaction that made the change. */
export async function completeIdempotencyKey(scope: Scope, req: IdempotentRequest, answer: StoredAnswer): Promise<void> {
  await sql`
    update idempotency_keys
    set status = ${answer.status}, response = ${JSON.stringify(answer.body)}::jsonb, patient_ids = ${answer.patientIds}::uuid[]
    where principal_id = ${ownerOf(scope)} and key = ${req.key}`.execute(scope.tx);
}

/** Forgets keys older than a day (their retries are long over). A system scope; returns how many went. */
export async function expireIdempotencyKeys(scope: Scope): Promise<number> {
  const r = await sql`delete from idempotency_keys where created_at < now() - interval '24 hours'`.execute(scope.tx);
  return Number(r.numAffectedRows ?? 0);
}

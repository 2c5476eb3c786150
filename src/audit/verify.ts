import { createHash } from 'node:crypto';
import { sql, type Tx } from '../db';

export interface AuditVerifyResult {
  ok: boolean;
  checked: number;
  /** The first event whose hash or link does not hold. */
  firstBad?: { seq: number; id: string; problem: 'hash_mismatch' | 'broken_link' | 'sequence_gap' | 'missing_tail' };
  headSeq: number;
}

const GENESIS = createHash('sha256').update('confidant audit genesis', 'utf8').digest();

function field(v: string | null): string {
  return v === null ? '~' : `${Buffer.byteLength(v, 'utf8')}:${v}`;
}

export interface AuditRowForHash {
  seq: number;
  id: string;
  occurred_at: Date;
  actor_kind: string;
  actor_id: string | null;
  actor_role: string | null;
  session_id: string | null;
  system_reason: string | null;
  action: string;
  object_type: string | null;
  object_id: string | null;
  patient_id: string | null;
  outcome: string;
  client_ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: string | null;
}

/** Must match the SQL function confidant_audit_canonical, written independently. */
export function canonicalAuditText(e: AuditRowForHash): string {
  return [
    String(e.seq),
    e.id,
    String(e.occurred_at.getTime()),
    e.actor_kind,
    e.actor_id,
    e.actor_role,
    e.session_id,
    e.system_reason,
    e.action,
    e.object_type,
    e.object_id,
    e.patient_id,
    e.outcome,
    e.client_ip,
    e.user_agent,
    e.request_id,
    e.details,
  ]
    .map(field)
    .join('|');
}

export function auditHash(prev: Buffer, e: AuditRowForHash): Buffer {
  return createHash('sha256').update(prev).update(canonicalAuditText(e), 'utf8').digest();
}

/** Walks the whole chain in order, a page at a time, and names the first event that fails. */
export async function verifyAuditChain(tx: Tx, pageSize = 5000): Promise<AuditVerifyResult> {
  // Read the head first: every event up to it is committed, later appends are left for the next run.
  const head = (await sql<{ seq: number; hash: Buffer }>`select seq, hash from confidant_audit_head()`.execute(tx)).rows[0]!;
  let prev: Buffer = GENESIS;
  let expectedSeq = 1;
  let checked = 0;
  for (;;) {
    const rows = await tx
      .selectFrom('audit_events')
      .selectAll()
      .where('seq', '>=', expectedSeq)
      .where('seq', '<=', head.seq)
      .orderBy('seq')
      .limit(pageSize)
      .execute();
    for (const r of rows) {
      if (r.seq !== expectedSeq) {
        return { ok: false, checked, firstBad: { seq: r.seq, id: r.id, problem: 'sequence_gap' }, headSeq: expectedSeq - 1 };
      }
      if (!Buffer.from(r.prev_hash).equals(prev)) {
        return { ok: false, checked, firstBad: { seq: r.seq, id: r.id, problem: 'broken_link' }, headSeq: r.seq };
      }
      const h = auditHash(prev, r);
      if (!Buffer.from(r.hash).equals(h)) {
        return { ok: false, checked, firstBad: { seq: r.seq, id: r.id, problem: 'hash_mismatch' }, headSeq: r.seq };
      }
      prev = h;
      expectedSeq++;
      checked++;
    }
    if (rows.length < pageSize) break;
  }
  if ((head.seq !== expectedSeq - 1 || !Buffer.from(head.hash).equals(prev))) {
    return {
      ok: false,
      checked,
      firstBad: { seq: expectedSeq, id: '(removed)', problem: 'missing_tail' },
      headSeq: head.seq,
    };
  }
  return { ok: true, checked, headSeq: expectedSeq - 1 };
}

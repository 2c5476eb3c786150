import type { Scope } from '../../access/scope';
import { verifyAuditChain } from '../../audit/verify';
import { notFound } from '../../errors';

export interface AuditQuery {
  patientId?: string | undefined;
  actorId?: string | undefined;
  action?: string | undefined;
  outcome?: 'success' | 'denied' | 'failure' | undefined;
  beforeSeq?: number | undefined;
  limit: number;
}

/** An event's details as written (JSON of identifiers, codes and numbers); anything else reads as none. */
function parseDetails(text: string | null): Record<string, unknown> | null {
  if (!text) return null;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function requireDpo(scope: Scope) {
  if (!(scope.principal.kind === 'staff' && scope.principal.role === 'dpo') && scope.principal.kind !== 'system') throw notFound();
}

/** The DPO's view of the trail, newest first. Looking is itself recorded. */
export async function searchAuditEvents(scope: Scope, q: AuditQuery) {
  requireDpo(scope);
  let query = scope.tx
    .selectFrom('audit_events')
    .select([
      'seq', 'id', 'occurred_at', 'actor_kind', 'actor_id', 'actor_role', 'system_reason', 'action',
      'object_type', 'object_id', 'patient_id', 'outcome', 'client_ip', 'request_id', 'details',
    ])
    .orderBy('seq', 'desc')
    .limit(q.limit + 1);
  if (q.patientId) query = query.where('patient_id', '=', q.patientId);
  if (q.actorId) query = query.where('actor_id', '=', q.actorId);
  if (q.action) query = query.where('action', '=', q.action);
  if (q.outcome) query = query.where('outcome', '=', q.outcome);
  if (q.beforeSeq) query = query.where('seq', '<', q.beforeSeq);
  const rows = await query.execute();
  const page = rows.slice(0, q.limit);
  scope.audit({
    action: 'audit.search',
    objectType: 'audit_log',
    patientId: q.patientId ?? null,
    details: { filters: Object.keys(q).filter((k) => k !== 'limit' && q[k as keyof AuditQuery] !== undefined), returned: page.length },
  });
  return {
    events: page.map((r) => ({
      seq: r.seq,
      id: r.id,
      occurredAt: r.occurred_at.toISOString(),
      actorKind: r.actor_kind,
      actorId: r.actor_id,
      actorRole: r.actor_role,
      systemReason: r.system_reason,
      action: r.action,
      objectType: r.object_type,
      objectId: r.object_id,
      patientId: r.patient_id,
      outcome: r.outcome,
      clientIp: r.client_ip,
      requestId: r.request_id,
      details: parseDetails(r.details),
    })),
    nextBeforeSeq: rows.length > q.limit ? page[page.length - 1]!.seq : null,
  };
}

export async function verifyAuditTrail(scope: Scope) {
  requireDpo(scope);
  const result = await verifyAuditChain(scope.tx);
  scope.audit({
    action: 'audit.verify',
    objectType: 'audit_log',
    outcome: result.ok ? 'success' : 'failure',
    details: { checked: result.checked, headSeq: result.headSeq, ...(result.firstBad ? { firstBadSeq: result.firstBad.seq } : {}) },
  });
  return result;
}

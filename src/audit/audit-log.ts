import type { Principal } from '../access/principal';
import type { RequestContext } from '../access/request-context';
import { executeAtCommit, type Tx } from '../db';

/** One thing that happened to (or was attempted on) data. Never carries patient data itself. */
export interface AuditInput {
  action: string;
  objectType?: string;
  objectId?: string;
  /** The patient the event concerns, when there is one. */
  patientId?: string | null;
  outcome?: 'success' | 'denied' | 'failure';
  /** Identifiers and codes only: no names, no free text typed by a user. */
  details?: Record<string, string | number | boolean | null | string[] | number[]>;
}

const MAX_USER_AGENT = 300;

/**
 * Notified with an event whose outcome is `failure` (recorded by `recordDenial`): the breach
 * guard's detectors look at the chain at once instead of at their next poll.
 */
export const AUDIT_WAKE_CHANNEL = 'confidant_guard_wake';

export function toAuditRow(principal: Principal, request: RequestContext, e: AuditInput) {
  const actor = actorOf(principal);
  // Fields written out rather than spread: V8 builds a spread object slowly (measured 10 µs
  // per row with the spread, well under 1 µs without), and this runs for every audited request.
  return {
    actor_kind: actor.actor_kind,
    actor_id: actor.actor_id,
    actor_role: actor.actor_role,
    session_id: actor.session_id,
    system_reason: actor.system_reason,
    action: e.action,
    object_type: e.objectType ?? null,
    object_id: e.objectId ?? null,
    patient_id: e.patientId ?? null,
    outcome: e.outcome ?? 'success',
    client_ip: request.clientIp,
    user_agent: request.userAgent ? request.userAgent.slice(0, MAX_USER_AGENT) : null,
    request_id: request.requestId,
    details: e.details ? JSON.stringify(e.details) : null,
  };
}

function actorOf(p: Principal) {
  switch (p.kind) {
    case 'anonymous':
      return { actor_kind: 'anonymous', actor_id: null, actor_role: null, session_id: null, system_reason: null };
    case 'system':
      return { actor_kind: 'system', actor_id: null, actor_role: null, session_id: null, system_reason: p.reason };
    case 'pending':
      return {
        actor_kind: p.accountKind,
        actor_id: p.accountId,
        actor_role: `pending-${p.stage}`,
        session_id: p.sessionId,
        system_reason: null,
      };
    case 'staff':
      return { actor_kind: 'staff', actor_id: p.accountId, actor_role: p.role, session_id: p.sessionId, system_reason: null };
    default:
      return { actor_kind: p.kind, actor_id: p.accountId, actor_role: null, session_id: p.sessionId, system_reason: null };
  }
}

/** The columns the service writes; the database assigns seq, id, occurred_at and the hash chain. */
const AUDIT_COLUMNS = [
  ['actor_kind', 'text'],
  ['actor_id', 'uuid'],
  ['actor_role', 'text'],
  ['session_id', 'uuid'],
  ['system_reason', 'text'],
  ['action', 'text'],
  ['object_type', 'text'],
  ['object_id', 'text'],
  ['patient_id', 'uuid'],
  ['outcome', 'text'],
  ['client_ip', 'text'],
  ['user_agent', 'text'],
  ['request_id', 'text'],
  ['details', 'text'],
] as const satisfies readonly (readonly [keyof ReturnType<typeof toAuditRow>, string])[];

/**
 * One statement text for any number of rows (so it is prepared once per connection), one
 * parameter (the rows as JSON), inserted in the order given. Same rows, same row-level
 * security check and same chain trigger as a multi-row VALUES.
 */
const INSERT_AUDIT_EVENTS = `insert into audit_events (${AUDIT_COLUMNS.map(([c]) => c).join(', ')})
  select ${AUDIT_COLUMNS.map(([c]) => `r.${c}`).join(', ')}
  from rows from (jsonb_to_recordset($1::jsonb) as (${AUDIT_COLUMNS.map(([c, t]) => `${c} ${t}`).join(', ')}))
    with ordinality as r(${AUDIT_COLUMNS.map(([c]) => c).join(', ')}, n)
  order by r.n`;

/**
 * The only writer of the audit log. Appends in the caller's transaction; the database
 * assigns sequence, time and hash chain (trigger `confidant_audit_chain`).
 */
export async function appendAuditEvents(tx: Tx, rows: ReturnType<typeof toAuditRow>[]): Promise<void> {
  if (rows.length === 0) return;
  // Sent with the COMMIT: the chain head's row lock never waits on a round trip.
  const query = { sql: INSERT_AUDIT_EVENTS, parameters: [JSON.stringify(rows)] };
  await executeAtCommit(tx, query);
}


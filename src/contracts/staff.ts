import { z } from 'zod';
import { IsoDateTime, Uuid } from './common';

/**
 * A colleague as the caller may see them: everyone sees names and roles; only the practice
 * manager and the DPO, who look after accounts and their security, see email, two-step
 * verification and when the account was made.
 */
export const StaffMember = z.object({
  id: Uuid,
  kind: z.enum(['clinician', 'staff']),
  role: z.enum(['clinician', 'dpo', 'admin']),
  displayName: z.string(),
  email: z.string().optional(),
  mfaEnabled: z.boolean().optional(),
  createdAt: IsoDateTime.optional(),
});
export const StaffList = z.object({ staff: z.array(StaffMember) });

export const AuditEvent = z.object({
  seq: z.number().int(),
  id: Uuid,
  occurredAt: IsoDateTime,
  actorKind: z.string(),
  actorId: Uuid.nullable(),
  actorRole: z.string().nullable(),
  systemReason: z.string().nullable(),
  action: z.string(),
  objectType: z.string().nullable(),
  objectId: z.string().nullable(),
  patientId: Uuid.nullable(),
  outcome: z.enum(['success', 'denied', 'failure']),
  clientIp: z.string().nullable(),
  requestId: z.string().nullable(),
  /**
   * What the event recorded besides who and what: identifiers, codes and numbers only (a replay's
   * byte range, `bytes`, and the milliseconds they hold, `fromMs`/`toMs`; a denial's reason).
   */
  details: z.record(z.string(), z.json()).nullable(),
});
export const AuditEventQuery = z.strictObject({
  patientId: Uuid.optional(),
  actorId: Uuid.optional(),
  action: z.string().max(100).optional(),
  outcome: z.enum(['success', 'denied', 'failure']).optional(),
  beforeSeq: z.number().int().positive().optional(),
  limit: z.number().int().min(1).max(200).default(50),
});
export const AuditEventPage = z.object({ events: z.array(AuditEvent), nextBeforeSeq: z.number().int().nullable() });
export const AuditVerification = z.object({
  ok: z.boolean(),
  checked: z.number().int(),
  headSeq: z.number().int(),
  firstBad: z.object({ seq: z.number().int(), id: z.string(), problem: z.string() }).optional(),
});

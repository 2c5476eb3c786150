import { z } from 'zod';
import { IsoDateTime, Uuid } from './common';

/** The detection rules (issue 16): what each watches for is in src/modules/guard/rules.ts. */
export const GuardRule = z.enum(['containment', 'integrity', 'probing', 'volume']);
export type GuardRule = z.infer<typeof GuardRule>;
export const GuardSeverity = z.enum(['critical', 'high', 'medium']);
export type GuardSeverity = z.infer<typeof GuardSeverity>;

/**
 * An alert for the DPO, raised by a detection rule. Holds identifiers and codes, never patient
 * data: the triggering audit events are named by their sequence numbers in the audit chain.
 */
export const Alert = z.object({
  id: Uuid,
  raisedAt: IsoDateTime,
  rule: GuardRule,
  severity: GuardSeverity,
  /** The feature the rule implicates (the one switched off for a critical rule), if any. */
  feature: z.string().nullable(),
  /** What was done by itself: the feature switched off, the principal throttled, or nothing. */
  action: z.enum(['feature_disabled', 'throttled', 'none']),
  /** One plain sentence for the DPO: what was seen and what was done. */
  summary: z.string(),
  /** The audit events that triggered it, by sequence number (first ones, up to 100). */
  eventSeqs: z.array(z.number().int()),
  /** How many events triggered it in all (more may have been added to an open alert). */
  eventCount: z.number().int(),
  /** The principal implicated (probing, unusual volume), when there is one. */
  actorId: Uuid.nullable(),
  /** The incident record opened for it (critical alerts). */
  incidentId: Uuid.nullable(),
  acknowledgedAt: IsoDateTime.nullable(),
  /** Who acknowledged it, as the audit log names them. */
  acknowledgedBy: z.string().nullable(),
});
export type Alert = z.infer<typeof Alert>;
export const AlertList = z.object({ alerts: z.array(Alert) });
export const AlertParams = z.strictObject({ id: Uuid });

/** One fault case of the drill (`npm run drill`) and what happened to it. */
export const DrillCase = z.object({
  name: z.string(),
  description: z.string(),
  /** Bytes and rows of another patient's data that reached the patient: must be 0. */
  foreignBytes: z.number().int(),
  foreignRows: z.number().int(),
  /** The layer that stopped the fault: 'scope', 'rls', 'egress', or 'none'. */
  stoppedBy: z.string(),
  /** Whether a detection rule fired (a layer that stops silently gives none). */
  detected: z.boolean(),
  /** From the first violating event's commit to the feature being off in both processes. */
  containedMs: z.number().nullable(),
  /** From the first violating event's commit to the DPO's alert. */
  alertMs: z.number().nullable(),
  passed: z.boolean(),
  note: z.string(),
});
export const DrillReport = z.object({
  ranAt: IsoDateTime,
  passed: z.boolean(),
  database: z.string(),
  processes: z.number().int(),
  cases: z.array(DrillCase),
});
export type DrillReport = z.infer<typeof DrillReport>;
export const LastDrill = z.object({ report: DrillReport.nullable() });

import type { GuardRule, GuardSeverity } from '../../contracts/guard';
import { isFeatureName, type FeatureName } from '../features/features';

/** An audit event as detection reads it: identifiers and codes only. */
export interface WatchedEvent {
  seq: number;
  occurredAt: Date;
  actorKind: string;
  actorId: string | null;
  action: string;
  objectType: string | null;
  objectId: string | null;
  patientId: string | null;
  outcome: 'success' | 'denied' | 'failure';
  details: Record<string, unknown> | null;
}

/** What one event says on its own: a critical signal, or a candidate for a counting rule. */
export type Verdict =
  | { kind: 'signal'; rule: GuardRule; severity: GuardSeverity; feature: FeatureName | null; what: string }
  | { kind: 'probe'; actorId: string; objectType: ProbeTable; objectId: string }
  | { kind: 'touch'; actorId: string; patientId: string }
  | null;

/**
 * The audit actions that mean code tried to hand one patient's data to someone else (each layer
 * that stops it writes one), or that stored data failed its integrity check. Recording one wakes
 * detection at once in every process (src/access/scope.ts recordDenial).
 */
export const CRITICAL_ACTIONS = new Set(['egress.blocked', 'rls.violation', 'recording.integrity_failed']);

/** The objects a not-found answer can name that detection can look up, and their tables. */
export const PROBE_TABLES = {
  appointment: 'appointments',
  consultation: 'consultations',
  recording: 'recordings',
  notification: 'notifications',
} as const;
export type ProbeTable = keyof typeof PROBE_TABLES;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function featureOf(details: Record<string, unknown> | null): FeatureName | null {
  const f = details?.feature;
  return typeof f === 'string' && isFeatureName(f) ? f : null;
}

/** Judges one event. Pure: the counting rules' state lives in the database (detector.ts). */
export function judge(e: WatchedEvent): Verdict {
  switch (e.action) {
    case 'egress.blocked':
      return { kind: 'signal', rule: 'containment', severity: 'critical', feature: featureOf(e.details), what: 'the egress check refused a response holding another patient’s data' };
    case 'rls.violation':
      return {
        kind: 'signal',
        rule: 'containment',
        severity: 'critical',
        feature: featureOf(e.details),
        what: 'the database’s row-level security or an ownership trigger refused a write to another patient’s data',
      };
    case 'recording.integrity_failed':
      return { kind: 'signal', rule: 'integrity', severity: 'critical', feature: 'replay_playback', what: 'a recording segment failed its integrity tag while being played' };
    case 'recording.finalise_failed':
      if (e.details?.code === 'tampered') {
        return { kind: 'signal', rule: 'integrity', severity: 'critical', feature: 'recording', what: 'a recording’s chunks did not match what was received when it was sealed' };
      }
      return null;
    case 'audit.verify':
      if (e.outcome === 'failure') return { kind: 'signal', rule: 'integrity', severity: 'critical', feature: null, what: 'a verification run found the audit chain broken' };
      return null;
    default:
      break;
  }
  if (e.outcome === 'denied' && e.actorId && e.details?.reason === 'not_found' && e.objectId && UUID.test(e.objectId)) {
    const type = e.objectType;
    if (type && Object.hasOwn(PROBE_TABLES, type)) return { kind: 'probe', actorId: e.actorId, objectType: type as ProbeTable, objectId: e.objectId };
  }
  if (e.outcome === 'success' && e.actorId && e.patientId && (e.actorKind === 'clinician' || e.actorKind === 'staff')) {
    return { kind: 'touch', actorId: e.actorId, patientId: e.patientId };
  }
  return null;
}

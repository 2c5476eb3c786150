import { sql } from '../../db';
import type { Scope } from '../../access/scope';
import { describePrincipal, isAuthenticated } from '../../access/principal';
import { AppError, notFound } from '../../errors';

/**
 * Every user-facing capability, by the name routes declare (`feature` in defineRoute) and the
 * DPO, admins and the CLI switch. The database holds one row each (migration 0011); a test keeps
 * the two lists equal.
 */
export const FEATURES = {
  account: 'Who is signed in (the web app asks on every page)',
  registration: 'New patients registering',
  profile: "Patients' profiles",
  booking: 'Booking appointments (clinicians and free slots)',
  rescheduling: 'Moving an appointment to another time',
  appointments: 'Appointment lists, details, cancelling, outcomes and the clinician schedule',
  notifications: 'In-app notifications',
  consultation_join: 'Joining and running a consultation (waiting room, call signalling)',
  mode_switch: 'Switching a consultation from audio to video',
  recording: 'Recording consent and recording a consultation',
  replay_list: 'Listing consultation replays and their details',
  replay_playback: 'Playing a consultation replay',
  notes: "Clinicians' consultation notes",
} as const;
export type FeatureName = keyof typeof FEATURES;
export const FEATURE_NAMES = Object.keys(FEATURES) as FeatureName[];

export function isFeatureName(name: string): name is FeatureName {
  return Object.hasOwn(FEATURES, name);
}

/** What a caller of a switched-off feature is told: a 503 with a stable code, nothing done. */
export function featureDisabled(name: FeatureName): AppError {
  return new AppError('feature_disabled', 'This part of the service is switched off for the moment. Nothing was changed. Please try again later.', {
    details: { feature: name },
    headers: { 'retry-after': '60' },
  });
}

/** Sent (in the changing transaction, so on commit) to every process: re-read the flags. */
export const FEATURE_CHANNEL = 'confidant_features';

export interface FeatureState {
  name: FeatureName;
  description: string;
  enabled: boolean;
  changedAt: Date;
  /** Who made the last change, as the audit log names them. */
  changedBy: string;
  reason: string;
  /** How the last switch-off happened; after an automatic one only the DPO turns it back on. */
  disabledByKind: 'person' | 'automatic' | null;
}

/** Every feature's state (system work, the DPO and admins; row-level security refuses others). */
export async function listFeatures(scope: Scope): Promise<FeatureState[]> {
  const rows = await scope.tx.selectFrom('features').selectAll().orderBy('name').execute();
  return rows.filter((r) => isFeatureName(r.name)).map((r) => ({
    name: r.name as FeatureName,
    description: FEATURES[r.name as FeatureName],
    enabled: r.enabled,
    changedAt: r.changed_at,
    changedBy: r.changed_by_label,
    reason: r.reason,
    disabledByKind: r.disabled_by_kind,
  }));
}

/** Only the name→on/off map: what every process keeps in memory. */
export async function readFlags(scope: Scope): Promise<Map<string, boolean>> {
  const rows = await scope.tx.selectFrom('features').select(['name', 'enabled']).execute();
  return new Map(rows.map((r) => [r.name, r.enabled]));
}

/**
 * A person (the DPO, an admin, the operator's CLI) switches a feature on or off, with a reason.
 * After an automatic kill only the DPO may switch it back on. Audited; every process hears of it
 * on commit.
 */
export async function setFeature(scope: Scope, name: string, enabled: boolean, reason: string): Promise<FeatureState> {
  return change(scope, name, enabled, reason, 'person');
}

/**
 * An automatic kill: what a detection rule calls (as system work naming its rule) when it sees a
 * containment signal. Audited like any change; only the DPO turns the feature back on.
 */
export async function killFeature(scope: Scope, name: FeatureName, reason: string): Promise<FeatureState> {
  return change(scope, name, false, reason, 'automatic');
}

async function change(scope: Scope, name: string, enabled: boolean, reason: string, by: 'person' | 'automatic'): Promise<FeatureState> {
  if (!isFeatureName(name)) throw notFound();
  const why = reason.trim();
  if (why.length < 3 || why.length > 500) throw new AppError('validation_failed', 'Give a reason (3 to 500 characters).');
  const current = await scope.tx.selectFrom('features').selectAll().where('name', '=', name).forUpdate().executeTakeFirst();
  if (!current) throw notFound();
  const p = scope.principal;
  if (enabled && !current.enabled && current.disabled_by_kind === 'automatic' && !(p.kind === 'staff' && p.role === 'dpo')) {
    throw new AppError('dpo_required', 'This feature was switched off automatically; only the data-protection officer can switch it back on.');
  }
  const row = await scope.tx
    .updateTable('features')
    .set({
      enabled,
      changed_at: sql<Date>`now()`,
      changed_by: isAuthenticated(p) ? p.accountId : null,
      changed_by_label: describePrincipal(p),
      reason: why,
      // Remembered while the feature stays off; cleared when it comes back on.
      disabled_by_kind: enabled ? null : by,
    })
    .where('name', '=', name)
    .returningAll()
    .executeTakeFirstOrThrow();
  scope.audit({
    action: enabled ? 'feature.enable' : 'feature.disable',
    objectType: 'feature',
    objectId: name,
    // The reason is staff's or the operator's words about a feature, never about a patient.
    details: { feature: name, enabled, was: current.enabled, by, reason: why },
  });
  await sql`select pg_notify(${FEATURE_CHANNEL}, ${name})`.execute(scope.tx);
  return {
    name,
    description: FEATURES[name],
    enabled: row.enabled,
    changedAt: row.changed_at,
    changedBy: row.changed_by_label,
    reason: row.reason,
    disabledByKind: row.disabled_by_kind,
  };
}

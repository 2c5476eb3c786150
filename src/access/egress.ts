import type { Scope } from './scope';

/** A response was about to carry a patient-owned object outside the caller's scope: a bug, never an answer. */
export class EgressViolation extends Error {
  constructor(readonly foreignCount: number) {
    super(`egress check refused ${foreignCount} patient-owned object(s) outside the caller's scope`);
    this.name = 'EgressViolation';
  }
}

/**
 * The last check before a response leaves: every patient that an object in it belongs to
 * must be visible to the caller. Visibility is asked of the database under the caller's
 * own row-level security, so this check shares no code with the query that produced the data.
 */
export async function assertEgressAllowed(scope: Scope, patientIds: Iterable<string>): Promise<void> {
  const wanted = new Set(patientIds);
  if (wanted.size === 0) return;
  const p = scope.principal;
  if (p.kind === 'system') return;
  if (p.kind === 'patient') {
    wanted.delete(p.accountId);
    if (wanted.size > 0) throw new EgressViolation(wanted.size);
    return;
  }
  const visible = await scope.tx
    .selectFrom('patient_profiles')
    .select('account_id')
    .where('account_id', 'in', [...wanted])
    .execute();
  for (const r of visible) wanted.delete(r.account_id);
  if (wanted.size > 0) throw new EgressViolation(wanted.size);
}

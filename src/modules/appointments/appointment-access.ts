import type { Scope } from '../../access/scope';
import { notFound } from '../../errors';

/**
 * The visibility predicate for appointments, composed into every query: a patient sees their
 * own, a clinician the ones they hold. Nobody else (staff included) sees any; outside the
 * scope is answered exactly like missing. Row-level security applies the same rule again.
 */
export function appointmentsInScope(scope: Scope) {
  const p = scope.principal;
  if (p.kind === 'patient') return scope.tx.selectFrom('appointments').where('appointments.patient_id', '=', p.accountId);
  if (p.kind === 'clinician') return scope.tx.selectFrom('appointments').where('appointments.clinician_id', '=', p.accountId);
  throw notFound();
}

/** The clinician whose schedule the caller may manage: themselves, or (admin) any clinician. */
export async function manageableClinician(scope: Scope, clinicianId: string): Promise<string> {
  const p = scope.principal;
  const allowed = (p.kind === 'clinician' && p.accountId === clinicianId) || (p.kind === 'staff' && p.role === 'admin');
  if (!allowed) throw notFound();
  const row = await scope.tx
    .selectFrom('accounts')
    .select('id')
    .where('id', '=', clinicianId)
    .where('kind', '=', 'clinician')
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  if (!row) throw notFound();
  return row.id;
}

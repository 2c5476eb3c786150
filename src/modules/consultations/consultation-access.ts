import type { Scope } from '../../access/scope';
import { notFound } from '../../errors';
import type { PartyRole } from './signalling-hub';

/**
 * The visibility predicate for consultations, composed into every query: the patient and the
 * clinician of the consultation, nobody else (staff included). Outside the scope is answered
 * exactly like missing; row-level security applies the same rule again.
 */
export function consultationsInScope(scope: Scope) {
  const p = scope.principal;
  if (p.kind === 'patient') return scope.tx.selectFrom('consultations').where('consultations.patient_id', '=', p.accountId);
  if (p.kind === 'clinician') return scope.tx.selectFrom('consultations').where('consultations.clinician_id', '=', p.accountId);
  throw notFound();
}

/** Which side of a consultation the caller can be; anyone else has no consultations at all. */
export function partyOf(scope: Scope): { role: PartyRole; accountId: string } {
  const p = scope.principal;
  if (p.kind === 'patient' || p.kind === 'clinician') return { role: p.kind, accountId: p.accountId };
  throw notFound();
}

export function requireClinician(scope: Scope): string {
  if (scope.principal.kind !== 'clinician') throw notFound();
  return scope.principal.accountId;
}

export function requirePatient(scope: Scope): string {
  if (scope.principal.kind !== 'patient') throw notFound();
  return scope.principal.accountId;
}

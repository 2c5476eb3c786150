import { faultActive } from '../testing/fault-points';
import type { Scope } from './scope';

/** A response was about to carry a patient-owned object outside the caller's scope: a bug, never an answer. */
export class EgressViolation extends Error {
  constructor(
    readonly foreignCount: number,
    what = "patient-owned object(s) outside the caller's scope",
  ) {
    super(`egress check refused ${foreignCount} ${what}`);
    this.name = 'EgressViolation';
  }
}

/** Whose an object in a response is: its patient and, when it names one, its clinician. */
export interface EgressOwner {
  patientId: string;
  clinicianId?: string;
}

/**
 * The last check before a response leaves: every patient that an object in it belongs to
 * must be visible to the caller. Visibility is asked of the database under the caller's
 * own row-level security, so this check shares no code with the query that produced the data.
 */
export async function assertEgressAllowed(scope: Scope, owners: Iterable<string | EgressOwner>): Promise<void> {
  if (faultActive('egress_skipped')) return;
  const wanted = new Set<string>();
  const p = scope.principal;
  let otherClinicians = 0;
  for (const o of owners) {
    if (typeof o === 'string') {
      wanted.add(o);
      continue;
    }
    wanted.add(o.patientId);
    // A clinician receives only their own consultations' objects, even about a patient they share
    // with a colleague (whose notes or recordings are the colleague's).
    if (p.kind === 'clinician' && o.clinicianId !== undefined && o.clinicianId !== p.accountId) otherClinicians++;
  }
  if (wanted.size === 0) return;
  if (p.kind === 'system') return;
  if (otherClinicians > 0) throw new EgressViolation(otherClinicians, "object(s) of another clinician's consultation");
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

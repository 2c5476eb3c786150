import type { Scope } from '../../access/scope';
import { sql } from '../../db';
import { notFound } from '../../errors';
import { consultationsInScope, partyOf, requireClinician } from './consultation-access';

export interface NotesView {
  consultationId: string;
  /** For the egress check, not sent: whose notes these are. */
  patientId: string;
  clinicianId: string;
  body: string;
  updatedAt: string | null;
}

/**
 * The clinician's notes of a consultation. The clinician reads them at any time; the patient once
 * the consultation has ended (before that, an empty page: they exist only after the call).
 */
export async function readNotes(scope: Scope, consultationId: string): Promise<NotesView> {
  const me = partyOf(scope);
  const consultation = await consultationsInScope(scope)
    .select(['consultations.id', 'consultations.patient_id', 'consultations.clinician_id', 'consultations.status'])
    .where('consultations.id', '=', consultationId)
    .executeTakeFirst();
  if (!consultation) throw notFound();
  const visible = me.role === 'clinician' || consultation.status === 'ended';
  const row = visible
    ? await scope.tx
        .selectFrom('consultation_notes')
        .select(['body', 'updated_at'])
        .where('consultation_id', '=', consultationId)
        .executeTakeFirst()
    : undefined;
  scope.audit({ action: 'consultation_notes.read', objectType: 'consultation', objectId: consultationId, patientId: consultation.patient_id });
  return {
    consultationId,
    patientId: consultation.patient_id,
    clinicianId: consultation.clinician_id,
    body: row?.body ?? '',
    updatedAt: row ? new Date(row.updated_at).toISOString() : null,
  };
}

export async function writeNotes(scope: Scope, consultationId: string, body: string): Promise<NotesView> {
  requireClinician(scope);
  const consultation = await consultationsInScope(scope)
    .select(['consultations.id', 'consultations.patient_id', 'consultations.clinician_id'])
    .where('consultations.id', '=', consultationId)
    .executeTakeFirst();
  if (!consultation) throw notFound();
  const row = await scope.tx
    .insertInto('consultation_notes')
    .values({ consultation_id: consultationId, body })
    .onConflict((oc) => oc.column('consultation_id').doUpdateSet({ body, updated_at: sql<Date>`now()` }))
    .returning(['body', 'updated_at'])
    .executeTakeFirstOrThrow();
  // The body is free text about a patient: never in the audit log, only its length.
  scope.audit({
    action: 'consultation_notes.write',
    objectType: 'consultation',
    objectId: consultationId,
    patientId: consultation.patient_id,
    details: { length: body.length },
  });
  return {
    consultationId,
    patientId: consultation.patient_id,
    clinicianId: consultation.clinician_id,
    body: row.body,
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

import type { Scope } from '../../access/scope';
import { compileOnce } from '../../db';
import { notFound } from '../../errors';

/** The visibility predicate for profiles: a patient sees only their own. */
function ownPatientId(scope: Scope): string {
  if (scope.principal.kind !== 'patient') throw notFound();
  return scope.principal.accountId;
}

// Compiled once (GET /api/profile runs it for every request); runs in the scope's transaction.
const selectProfile = compileOnce((db, args: { patientId: string }) =>
  db
    .selectFrom('patient_profiles as p')
    .innerJoin('accounts as a', 'a.id', 'p.account_id')
    .select(['p.account_id', 'p.given_name', 'p.family_name', 'p.date_of_birth', 'p.nhs_number', 'p.created_at', 'a.email'])
    .where('p.account_id', '=', args.patientId),
);

async function loadProfile(scope: Scope, patientId: string) {
  return (await selectProfile.run(scope.tx, { patientId }))[0];
}

function shape(row: NonNullable<Awaited<ReturnType<typeof loadProfile>>>) {
  return {
    patientId: row.account_id,
    givenName: row.given_name,
    familyName: row.family_name,
    dateOfBirth: row.date_of_birth,
    nhsNumber: row.nhs_number,
    email: row.email,
    createdAt: row.created_at.toISOString(),
  };
}

export async function readMyProfile(scope: Scope) {
  const patientId = ownPatientId(scope);
  const row = await loadProfile(scope, patientId);
  if (!row) throw notFound();
  scope.audit({ action: 'profile.read', objectType: 'patient', objectId: patientId, patientId });
  return shape(row);
}

export async function updateMyProfile(scope: Scope, input: { givenName?: string | undefined; familyName?: string | undefined }) {
  const patientId = ownPatientId(scope);
  const changes = {
    ...(input.givenName !== undefined ? { given_name: input.givenName } : {}),
    ...(input.familyName !== undefined ? { family_name: input.familyName } : {}),
  };
  const updated = await scope.tx
    .updateTable('patient_profiles')
    .set({ ...changes, updated_at: new Date() })
    .where('account_id', '=', patientId)
    .returning('account_id')
    .executeTakeFirst();
  if (!updated) throw notFound();
  if (input.givenName !== undefined) {
    await scope.tx.updateTable('accounts').set({ display_name: input.givenName }).where('id', '=', patientId).execute();
  }
  scope.audit({ action: 'profile.update', objectType: 'patient', objectId: patientId, patientId, details: { fields: Object.keys(changes) } });
  const row = await loadProfile(scope, patientId);
  return shape(row!);
}

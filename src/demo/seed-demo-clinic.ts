import type { Scope } from '../access/scope';
import { hashPassword } from '../modules/identity/passwords';
import { createStaffAccount } from '../modules/identity/staff-accounts';
import { DEMO_PEOPLE } from './demo-clinic';

/** Idempotent: people already present are left as they are. Runs in a system scope. */
export async function seedDemoClinic(scope: Scope): Promise<{ created: number }> {
  if (scope.principal.kind !== 'system') throw new Error('demo seeding needs a system scope');
  const existing = new Set(
    (await scope.tx.selectFrom('accounts').select('email').where('email', 'in', DEMO_PEOPLE.map((p) => p.email)).execute()).map((r) => r.email),
  );
  let created = 0;
  for (const person of DEMO_PEOPLE) {
    if (existing.has(person.email)) continue;
    created++;
    if (person.role === 'patient') {
      const id = crypto.randomUUID();
      await scope.tx.insertInto('accounts').values({ id, kind: 'patient', email: person.email, display_name: person.displayName }).execute();
      await scope.tx.insertInto('account_credentials').values({ account_id: id, password_hash: await hashPassword(person.password) }).execute();
      await scope.tx
        .insertInto('patient_profiles')
        .values({
          account_id: id,
          given_name: person.givenName!,
          family_name: person.familyName!,
          date_of_birth: person.dateOfBirth!,
          nhs_number: person.nhsNumber ?? null,
        })
        .execute();
      scope.audit({ action: 'patient.register', objectType: 'patient', objectId: id, patientId: id, details: { demo: true } });
    } else {
      await createStaffAccount(scope, {
        email: person.email,
        displayName: person.displayName,
        role: person.role,
        password: person.password,
        ...(person.totpSecret ? { mfaSecret: person.totpSecret } : {}),
      });
    }
  }
  return { created };
}

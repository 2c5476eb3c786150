import type { Scope } from '../access/scope';
import type { Config } from '../config';
import { addDays, localParts, zonedToUtc } from '../modules/appointments/clinic-time';
import { hashPassword } from '../modules/identity/passwords';
import type { MfaSecretBox } from '../modules/identity/mfa-secrets';
import { createStaffAccount } from '../modules/identity/staff-accounts';
import { DEMO_PEOPLE } from './demo-clinic';

/** Idempotent: people already present are left as they are. Runs in a system scope. */
export async function seedDemoClinic(scope: Scope, clinic: Config['clinic'], mfaSecrets: MfaSecretBox): Promise<{ created: number }> {
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
        ...(person.totpSecret ? { mfa: { secret: person.totpSecret, box: mfaSecrets } } : {}),
      });
    }
  }
  const booked = await seedDemoAppointments(scope, clinic);
  return { created: created + booked };
}

/** Demo GPs keep long hours every day, so a newcomer can book "today" whenever they try. */
const DEMO_HOURS = { start: '07:00', end: '22:00' };

/**
 * Availability for the demo GPs and, once, a few appointments for the demo patients: one
 * upcoming and one completed for Amara, a completed and a no-show for Ben.
 */
async function seedDemoAppointments(scope: Scope, clinic: Config['clinic']): Promise<number> {
  const people = await scope.tx
    .selectFrom('accounts')
    .select(['id', 'email', 'kind'])
    .where('email', 'in', DEMO_PEOPLE.map((p) => p.email))
    .execute();
  const id = (email: string) => people.find((p) => p.email === email)?.id;
  const clinicians = people.filter((p) => p.kind === 'clinician');
  let created = 0;
  for (const c of clinicians) {
    const has = await scope.tx.selectFrom('availability_rules').select('id').where('clinician_id', '=', c.id).executeTakeFirst();
    if (has) continue;
    await scope.tx
      .insertInto('availability_rules')
      .values([1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ clinician_id: c.id, weekday, start_time: DEMO_HOURS.start, end_time: DEMO_HOURS.end })))
      .execute();
    created++;
  }
  const amara = id('amara@demo.confidant.test');
  const ben = id('ben@demo.confidant.test');
  const patel = id('dr.patel@demo.confidant.test');
  const hughes = id('dr.hughes@demo.confidant.test');
  if (!amara || !ben || !patel || !hughes) return created;
  const any = await scope.tx.selectFrom('appointments').select('id').where('patient_id', 'in', [amara, ben]).executeTakeFirst();
  if (any) return created;
  const today = localParts(new Date(), clinic.timeZone).date;
  const at = (dayOffset: number, hhmm: string) => zonedToUtc(addDays(today, dayOffset), Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3)), clinic.timeZone);
  const slot = (start: Date) => ({ starts_at: start, ends_at: new Date(start.getTime() + clinic.slotMinutes * 60_000) });
  const rows = [
    { patient_id: amara, clinician_id: patel, ...slot(at(1, '10:00')), mode: 'video' as const, reason: 'Follow-up on blood test results', status: 'booked' as const },
    { patient_id: amara, clinician_id: patel, ...slot(at(-7, '09:30')), mode: 'audio' as const, reason: 'Recurring headaches', status: 'completed' as const },
    { patient_id: ben, clinician_id: hughes, ...slot(at(-3, '14:00')), mode: 'video' as const, reason: 'Knee pain after running', status: 'completed' as const },
    { patient_id: ben, clinician_id: hughes, ...slot(at(-10, '11:20')), mode: 'audio' as const, reason: 'Repeat prescription review', status: 'no_show' as const },
  ];
  for (const r of rows) {
    const { id: appointmentId } = await scope.tx.insertInto('appointments').values(r).returning('id').executeTakeFirstOrThrow();
    scope.audit({ action: 'appointment.book', objectType: 'appointment', objectId: appointmentId, patientId: r.patient_id, details: { demo: true } });
    created++;
  }
  return created;
}

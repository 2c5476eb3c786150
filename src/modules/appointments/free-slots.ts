import type { Scope } from '../../access/scope';
import type { Config } from '../../config';
import { sql } from '../../db';
import { AppError } from '../../errors';
import { appointmentsInScope } from './appointment-access';
import { addDays, localParts, parseTime } from './clinic-time';
import { offeredSlots, type Slot } from './slots';

export type ClinicSettings = Config['clinic'];

/** Clinicians a patient may book with (names only leave the service). */
export async function listClinicians(scope: Scope) {
  const rows = await scope.tx
    .selectFrom('accounts')
    .select(['id', 'display_name'])
    .where('kind', '=', 'clinician')
    .where('disabled_at', 'is', null)
    .orderBy('display_name')
    .execute();
  return rows.map((r) => ({ id: r.id, displayName: r.display_name }));
}

async function assertClinician(scope: Scope, clinicianId: string) {
  const row = await scope.tx
    .selectFrom('accounts')
    .select('id')
    .where('id', '=', clinicianId)
    .where('kind', '=', 'clinician')
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  if (!row) throw new AppError('unknown_clinician', 'That clinician is not taking bookings here.');
}

/**
 * Free slots from now on, earliest first, for one clinician or any: the offered slots minus
 * leave and blocks, minus taken ones (asked of the database without learning whose they are).
 */
export async function freeSlots(
  scope: Scope,
  clinic: ClinicSettings,
  opts: {
    clinicianId?: string | undefined;
    from?: string | undefined;
    days?: number | undefined;
    limit?: number;
    /** Each time once (the first GP free then): "any GP" lists more days within a limit. */
    onePerTime?: boolean;
    now?: Date;
  },
): Promise<Slot[]> {
  const now = opts.now ?? new Date();
  const days = Math.min(opts.days ?? clinic.horizonDays, clinic.horizonDays);
  if (opts.clinicianId) await assertClinician(scope, opts.clinicianId);
  const clinicians = opts.clinicianId ? [opts.clinicianId] : (await listClinicians(scope)).map((c) => c.id);
  if (clinicians.length === 0) return [];
  const today = localParts(now, clinic.timeZone).date;
  const lastDate = addDays(today, clinic.horizonDays);
  const fromDate = opts.from && opts.from > today ? opts.from : today;
  if (fromDate > lastDate) return [];
  const rules = await scope.tx
    .selectFrom('availability_rules')
    .select(['clinician_id', 'weekday', 'start_time', 'end_time'])
    .where('clinician_id', 'in', clinicians)
    .execute();
  const to = new Date(now.getTime() + (clinic.horizonDays + 2) * 86_400_000);
  const exceptions = await scope.tx
    .selectFrom('availability_exceptions')
    .select(['clinician_id', 'starts_at', 'ends_at'])
    .where('clinician_id', 'in', clinicians)
    .where('ends_at', '>', now)
    .where('starts_at', '<', to)
    .execute();
  const taken = await sql<{ clinician_id: string; starts_at: Date }>`
    select clinician_id, starts_at from confidant_taken_slots(${clinicians}::uuid[], ${now}, ${to})`.execute(scope.tx);
  const takenKeys = new Set(taken.rows.map((t) => `${t.clinician_id}|${new Date(t.starts_at).getTime()}`));
  const offered = offeredSlots({
    rules: rules.map((r) => ({ clinicianId: r.clinician_id, weekday: r.weekday, startMinutes: parseTime(r.start_time), endMinutes: parseTime(r.end_time) })),
    exceptions: exceptions.map((e) => ({ clinicianId: e.clinician_id, startsAt: new Date(e.starts_at), endsAt: new Date(e.ends_at) })),
    fromDate,
    days: Math.min(days, Math.round((Date.parse(lastDate) - Date.parse(fromDate)) / 86_400_000) + 1),
    tz: clinic.timeZone,
    slotMinutes: clinic.slotMinutes,
  });
  // A patient is not offered a time at which they already hold a consultation: booking it would
  // be refused (appointments_patient_slot_key), and a clash with any GP is a clash.
  const mine = await ownBookings(scope, now, to);
  const clashes = (s: Slot) => mine.some((b) => s.startsAt < b.ends_at && b.starts_at < s.endsAt);
  const seenTimes = new Set<number>();
  const free = offered.filter((s) => {
    const at = s.startsAt.getTime();
    if (at <= now.getTime() || takenKeys.has(`${s.clinicianId}|${at}`) || clashes(s)) return false;
    if (opts.onePerTime) {
      if (seenTimes.has(at)) return false;
      seenTimes.add(at);
    }
    return true;
  });
  return opts.limit ? free.slice(0, opts.limit) : free;
}

/** The caller's own booked consultations in the window, when the caller is a patient. */
async function ownBookings(scope: Scope, from: Date, to: Date): Promise<{ starts_at: Date; ends_at: Date }[]> {
  if (scope.principal.kind !== 'patient') return [];
  const rows = await appointmentsInScope(scope)
    .select(['appointments.starts_at', 'appointments.ends_at'])
    .where('appointments.status', '=', 'booked')
    .where('appointments.ends_at', '>', from)
    .where('appointments.starts_at', '<', to)
    .execute();
  return rows.map((r) => ({ starts_at: new Date(r.starts_at), ends_at: new Date(r.ends_at) }));
}

/** Is `startsAt` a slot the clinician offers (ignoring whether it is taken)? */
export async function assertOfferedSlot(scope: Scope, clinic: ClinicSettings, clinicianId: string, startsAt: Date, now = new Date()): Promise<Slot> {
  await assertClinician(scope, clinicianId);
  if (startsAt.getTime() <= now.getTime()) throw new AppError('slot_in_past', 'That time has already passed. Choose a later slot.');
  if (startsAt.getTime() > now.getTime() + (clinic.horizonDays + 1) * 86_400_000) {
    throw new AppError('slot_unavailable', `Bookings open ${clinic.horizonDays} days ahead. Choose an earlier slot.`);
  }
  const date = localParts(startsAt, clinic.timeZone).date;
  const rules = await scope.tx
    .selectFrom('availability_rules')
    .select(['clinician_id', 'weekday', 'start_time', 'end_time'])
    .where('clinician_id', '=', clinicianId)
    .execute();
  const exceptions = await scope.tx
    .selectFrom('availability_exceptions')
    .select(['clinician_id', 'starts_at', 'ends_at'])
    .where('clinician_id', '=', clinicianId)
    .where('ends_at', '>', new Date(startsAt.getTime() - 86_400_000))
    .where('starts_at', '<', new Date(startsAt.getTime() + 86_400_000))
    .execute();
  const offered = offeredSlots({
    rules: rules.map((r) => ({ clinicianId: r.clinician_id, weekday: r.weekday, startMinutes: parseTime(r.start_time), endMinutes: parseTime(r.end_time) })),
    exceptions: exceptions.map((e) => ({ clinicianId: e.clinician_id, startsAt: new Date(e.starts_at), endsAt: new Date(e.ends_at) })),
    fromDate: addDays(date, -1),
    days: 3,
    tz: clinic.timeZone,
    slotMinutes: clinic.slotMinutes,
  });
  const slot = offered.find((s) => s.startsAt.getTime() === startsAt.getTime());
  if (!slot) throw new AppError('slot_unavailable', 'That time is not one of the clinician’s slots. Choose a slot from the list.');
  return slot;
}


import type { Scope } from '../../access/scope';
import { isUniqueViolation } from '../../db';
import { sqlStatement } from '../../db';
import type { AppointmentStatus } from '../../db/schema';
import { AppError, notFound } from '../../errors';
import { appointmentsInScope } from './appointment-access';
import { addDays, zonedToUtc } from './clinic-time';
import { assertOfferedSlot, type ClinicSettings } from './free-slots';

export interface AppointmentView {
  id: string;
  patientId: string;
  clinician: { id: string; displayName: string };
  startsAt: string;
  endsAt: string;
  mode: 'audio' | 'video';
  reason: string;
  status: AppointmentStatus;
  cancelledBy: 'patient' | 'clinician' | 'staff' | null;
  rescheduledFrom: string | null;
  rescheduledTo: string | null;
  consultationId: string | null;
  createdAt: string;
}

function selectView(scope: Scope) {
  return appointmentsInScope(scope)
    .innerJoin('accounts as c', 'c.id', 'appointments.clinician_id')
    // A reschedule keeps the patient (and parties never change), so this also narrows the probe.
    .leftJoin('appointments as moved_to', (j) =>
      j.onRef('moved_to.rescheduled_from', '=', 'appointments.id').onRef('moved_to.patient_id', '=', 'appointments.patient_id'),
    )
    // Its consultation once ended (read under the caller's row-level security, as the appointment).
    .leftJoin('consultations as held', (j) => j.onRef('held.appointment_id', '=', 'appointments.id').on('held.status', '=', 'ended'))
    .select([
      'moved_to.id as rescheduled_to',
      'held.id as consultation_id',
      'appointments.id',
      'appointments.patient_id',
      'appointments.clinician_id',
      'c.display_name as clinician_name',
      'appointments.starts_at',
      'appointments.ends_at',
      'appointments.mode',
      'appointments.reason',
      'appointments.status',
      'appointments.cancelled_by',
      'appointments.rescheduled_from',
      'appointments.created_at',
    ]);
}

type ViewRow = Awaited<ReturnType<ReturnType<typeof selectView>['executeTakeFirstOrThrow']>>;

function toView(r: ViewRow): AppointmentView {
  return {
    id: r.id,
    patientId: r.patient_id,
    clinician: { id: r.clinician_id, displayName: r.clinician_name },
    startsAt: new Date(r.starts_at).toISOString(),
    endsAt: new Date(r.ends_at).toISOString(),
    mode: r.mode,
    reason: r.reason,
    status: r.status,
    cancelledBy: r.cancelled_by,
    rescheduledFrom: r.rescheduled_from,
    rescheduledTo: r.rescheduled_to,
    consultationId: r.consultation_id,
    createdAt: r.created_at.toISOString(),
  };
}

async function loadView(scope: Scope, id: string): Promise<AppointmentView> {
  const row = await selectView(scope).where('appointments.id', '=', id).executeTakeFirst();
  if (!row) throw notFound();
  return toView(row);
}

function requirePatient(scope: Scope): string {
  if (scope.principal.kind !== 'patient') throw notFound();
  return scope.principal.accountId;
}

async function tellPatient(scope: Scope, patientId: string, appointmentId: string, kind: 'appointment_booked' | 'appointment_cancelled' | 'appointment_rescheduled') {
  await scope.tx.insertInto('notifications').values({ recipient_id: patientId, kind, appointment_id: appointmentId }).execute();
  await scope.tx.insertInto('outbox').values({ recipient_id: patientId, channel: 'email', template: kind, appointment_id: appointmentId }).execute();
}

/** Serialises one patient's bookings, so "at most N future bookings" holds under concurrency. */
async function lockPatient(scope: Scope, patientId: string) {
  await scope.tx.selectFrom('accounts').select('id').where('id', '=', patientId).forUpdate().executeTakeFirst();
}

async function futureBookings(scope: Scope, now: Date, except?: string): Promise<number> {
  let q = appointmentsInScope(scope)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('appointments.status', '=', 'booked')
    .where('appointments.starts_at', '>', now);
  if (except) q = q.where('appointments.id', '<>', except);
  return Number((await q.executeTakeFirstOrThrow()).n);
}

async function insertAppointment(
  scope: Scope,
  values: { patientId: string; clinicianId: string; startsAt: Date; endsAt: Date; mode: 'audio' | 'video'; reason: string; rescheduledFrom?: string },
): Promise<string> {
  try {
    const row = await scope.tx
      .insertInto('appointments')
      .values({
        patient_id: values.patientId,
        clinician_id: values.clinicianId,
        starts_at: values.startsAt,
        ends_at: values.endsAt,
        mode: values.mode,
        reason: values.reason,
        rescheduled_from: values.rescheduledFrom ?? null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  } catch (err) {
    if (isUniqueViolation(err, 'appointments_clinician_slot_key')) {
      throw new AppError('slot_taken', 'Someone has just booked that slot. Choose another one.');
    }
    if (isUniqueViolation(err, 'appointments_patient_slot_key')) {
      throw new AppError('slot_taken', 'You already have a consultation at that time.');
    }
    throw err;
  }
}

export interface BookInput {
  clinicianId: string;
  startsAt: string;
  mode: 'audio' | 'video';
  reason: string;
}

export async function bookAppointment(scope: Scope, clinic: ClinicSettings, input: BookInput, now = new Date()): Promise<AppointmentView> {
  const patientId = requirePatient(scope);
  const slot = await assertOfferedSlot(scope, clinic, input.clinicianId, new Date(input.startsAt), now);
  await lockPatient(scope, patientId);
  if ((await futureBookings(scope, now)) >= clinic.maxFutureBookings) {
    throw new AppError(
      'too_many_bookings',
      `You can hold ${clinic.maxFutureBookings} upcoming consultation${clinic.maxFutureBookings === 1 ? '' : 's'} at a time. Cancel or attend one first.`,
    );
  }
  const id = await insertAppointment(scope, { patientId, clinicianId: slot.clinicianId, startsAt: slot.startsAt, endsAt: slot.endsAt, mode: input.mode, reason: input.reason });
  await tellPatient(scope, patientId, id, 'appointment_booked');
  scope.audit({ action: 'appointment.book', objectType: 'appointment', objectId: id, patientId, details: { mode: input.mode } });
  return loadView(scope, id);
}

async function lockChangeable(scope: Scope, id: string, now: Date) {
  const row = await appointmentsInScope(scope)
    .selectAll('appointments')
    .where('appointments.id', '=', id)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw notFound();
  if (row.status !== 'booked' || new Date(row.starts_at).getTime() <= now.getTime()) {
    throw new AppError('appointment_not_changeable', 'This consultation can no longer be changed: it has started, ended or was cancelled.');
  }
  return row;
}

export async function cancelAppointment(scope: Scope, id: string, now = new Date()): Promise<AppointmentView> {
  const row = await lockChangeable(scope, id, now);
  const by = scope.principal.kind === 'patient' ? 'patient' : 'clinician';
  await scope.tx
    .updateTable('appointments')
    .set({ status: 'cancelled', cancelled_by: by, cancelled_at: now, updated_at: now })
    .where('id', '=', row.id)
    .execute();
  await tellPatient(scope, row.patient_id, row.id, 'appointment_cancelled');
  scope.audit({ action: 'appointment.cancel', objectType: 'appointment', objectId: row.id, patientId: row.patient_id, details: { by } });
  return loadView(scope, row.id);
}

/** Atomic: the new slot is taken first; if it is gone, nothing changes. Then the old is freed. */
export async function rescheduleAppointment(
  scope: Scope,
  clinic: ClinicSettings,
  id: string,
  input: { startsAt: string; clinicianId?: string | undefined; mode?: 'audio' | 'video' | undefined },
  now = new Date(),
): Promise<AppointmentView> {
  const patientId = requirePatient(scope);
  await lockPatient(scope, patientId);
  const old = await lockChangeable(scope, id, now);
  const slot = await assertOfferedSlot(scope, clinic, input.clinicianId ?? old.clinician_id, new Date(input.startsAt), now);
  const newId = await insertAppointment(scope, {
    patientId,
    clinicianId: slot.clinicianId,
    startsAt: slot.startsAt,
    endsAt: slot.endsAt,
    mode: input.mode ?? old.mode,
    reason: old.reason,
    rescheduledFrom: old.id,
  });
  await scope.tx
    .updateTable('appointments')
    .set({ status: 'cancelled', cancelled_by: 'patient', cancelled_at: now, updated_at: now })
    .where('id', '=', old.id)
    .execute();
  await tellPatient(scope, patientId, newId, 'appointment_rescheduled');
  scope.audit({ action: 'appointment.reschedule', objectType: 'appointment', objectId: newId, patientId, details: { from: old.id } });
  return loadView(scope, newId);
}

export const PAST_LIMIT = 50;

/** One row of the patient's list: timestamps as UTC text (no Date is built for them), and which list it belongs to. */
interface ListRow {
  id: string;
  patient_id: string;
  clinician_id: string;
  starts_at: string;
  ends_at: string;
  mode: 'audio' | 'video';
  reason: string;
  status: AppointmentStatus;
  cancelled_by: 'patient' | 'clinician' | 'staff' | null;
  rescheduled_from: string | null;
  created_at: string;
  rescheduled_to: string | null;
  consultation_id: string | null;
  upcoming: boolean;
  total: number;
}

/**
 * The patient's own appointments (`$1` is always the scope's own patient id: the visibility
 * predicate of appointmentsInScope, and row-level security applies again), in one statement:
 *   - upcoming (booked, not yet ended at `$2`) and at most `$3` of the most recent others: a
 *     long-standing patient's whole history is neither read out nor sent every time;
 *   - "moved to": a reschedule keeps the patient, so the booking that replaced one of the
 *     patient's appointments is itself one of them: it is found among the rows already read,
 *     with no probe per row;
 *   - timestamps as the text of the UTC time, turned into ISO 8601 below without a Date;
 *   - `total`: how many appointments the patient has (the audit event's count);
 *   - its consultation, once ended (consultations under row-level security too: the patient's own).
 * Clinicians' names are not joined here: see clinicianNames.
 */
const listMine = sqlStatement<ListRow, [patientId: string, now: Date, pastLimit: number]>(`with mine as materialized (
    select a.id, a.patient_id, a.clinician_id, a.starts_at, a.ends_at, a.mode, a.reason, a.status, a.cancelled_by,
           a.rescheduled_from, a.created_at, (a.status = 'booked' and a.ends_at > $2) as upcoming
    from appointments a
    where a.patient_id = $1
  ), ranked as (
    select mine.*, row_number() over (partition by mine.upcoming order by mine.starts_at desc, mine.id desc) as n,
           count(*) over () as total
    from mine
  )
  select r.id, r.patient_id, r.clinician_id, (r.starts_at at time zone 'UTC')::text as starts_at,
         (r.ends_at at time zone 'UTC')::text as ends_at, r.mode, r.reason, r.status, r.cancelled_by,
         r.rescheduled_from, (r.created_at at time zone 'UTC')::text as created_at, moved_to.id as rescheduled_to,
         held.id as consultation_id, r.upcoming, r.total::int as total
  from ranked r
  left join mine moved_to on moved_to.rescheduled_from = r.id
  left join consultations held on held.appointment_id = r.id and held.status = 'ended'
  where r.upcoming or r.n <= $3
  order by r.starts_at, r.id`);

// PostgreSQL's text for a timestamp (DateStyle ISO, which the pg driver's own date parsing also
// requires): 'YYYY-MM-DD HH:MM:SS' and up to six digits of fraction.
const PG_TIMESTAMP_TEXT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?$/;

/** The UTC timestamp's text as Date#toISOString would write it (milliseconds, truncated, and Z). */
function isoFromUtcText(t: string): string {
  // Never the value in the message: it is patient data.
  if (!PG_TIMESTAMP_TEXT.test(t)) throw new Error('unexpected timestamp text from the database');
  const ms = t.length > 20 ? `${t.slice(20)}00`.slice(0, 3) : '000';
  return `${t.slice(0, 10)}T${t.slice(11, 19)}.${ms}Z`;
}

const CLINICIAN_NAME_TTL_MS = 5 * 60_000;
const clinicianNameCache = new Map<string, { name: string; at: number }>();

/**
 * Clinicians' display names, cached in the process for a few minutes (they are set when the
 * account is created and nothing changes them). Only clinician accounts are cached: every patient
 * may read every clinician's account (policy accounts_clinician_directory), so a name from the
 * cache discloses nothing the caller's own query could not read. Names not cached are read in the
 * caller's transaction, under the caller's row-level security; an id the caller cannot read is
 * left out, as the inner join it replaces would have left out the appointment.
 */
async function clinicianNames(scope: Scope, ids: Set<string>): Promise<Map<string, string>> {
  const now = Date.now();
  const out = new Map<string, string>();
  const missing: string[] = [];
  for (const id of ids) {
    const hit = clinicianNameCache.get(id);
    if (hit && now - hit.at < CLINICIAN_NAME_TTL_MS) out.set(id, hit.name);
    else missing.push(id);
  }
  if (missing.length === 0) return out;
  const rows = await scope.tx.selectFrom('accounts').select(['id', 'kind', 'display_name']).where('id', 'in', missing).execute();
  if (clinicianNameCache.size > 10_000) clinicianNameCache.clear();
  for (const r of rows) {
    out.set(r.id, r.display_name);
    if (r.kind === 'clinician') clinicianNameCache.set(r.id, { name: r.display_name, at: now });
  }
  return out;
}

export async function listMyAppointments(scope: Scope, now = new Date()) {
  const patientId = requirePatient(scope);
  const rows = await listMine.run(scope.tx, [patientId, now, PAST_LIMIT]);
  const names = await clinicianNames(scope, new Set(rows.map((r) => r.clinician_id)));
  scope.audit({ action: 'appointment.list', objectType: 'patient', objectId: patientId, patientId, details: { count: rows[0]?.total ?? 0 } });
  const upcoming: AppointmentView[] = [];
  const past: AppointmentView[] = [];
  for (const r of rows) {
    const clinicianName = names.get(r.clinician_id);
    if (clinicianName === undefined) continue;
    const view: AppointmentView = {
      id: r.id,
      patientId: r.patient_id,
      clinician: { id: r.clinician_id, displayName: clinicianName },
      startsAt: isoFromUtcText(r.starts_at),
      endsAt: isoFromUtcText(r.ends_at),
      mode: r.mode,
      reason: r.reason,
      status: r.status,
      cancelledBy: r.cancelled_by,
      rescheduledFrom: r.rescheduled_from,
      rescheduledTo: r.rescheduled_to,
      consultationId: r.consultation_id,
      createdAt: isoFromUtcText(r.created_at),
    };
    (r.upcoming ? upcoming : past).push(view);
  }
  // Upcoming soonest first; past most recent first.
  past.reverse();
  return { upcoming, past };
}

export async function readAppointment(scope: Scope, id: string) {
  const view = await loadView(scope, id);
  scope.audit({ action: 'appointment.read', objectType: 'appointment', objectId: id, patientId: view.patientId });
  return view;
}

/** A clinician's own day (local date in the clinic's zone), with each patient's name and reason. */
export async function clinicianDay(scope: Scope, clinic: ClinicSettings, date: string) {
  if (scope.principal.kind !== 'clinician') throw notFound();
  const from = zonedToUtc(date, 0, clinic.timeZone);
  const to = zonedToUtc(addDays(date, 1), 0, clinic.timeZone);
  const rows = await appointmentsInScope(scope)
    .innerJoin('patient_profiles as p', 'p.account_id', 'appointments.patient_id')
    .leftJoin('appointments as moved_to', (j) =>
      j.onRef('moved_to.rescheduled_from', '=', 'appointments.id').onRef('moved_to.patient_id', '=', 'appointments.patient_id'),
    )
    // Its consultation once ended (read under the caller's row-level security, as the appointment).
    .leftJoin('consultations as held', (j) => j.onRef('held.appointment_id', '=', 'appointments.id').on('held.status', '=', 'ended'))
    .select([
      'moved_to.id as rescheduled_to',
      'held.id as consultation_id',
      'appointments.id',
      'appointments.patient_id',
      'p.given_name',
      'p.family_name',
      'p.date_of_birth',
      'appointments.starts_at',
      'appointments.ends_at',
      'appointments.mode',
      'appointments.reason',
      'appointments.status',
      'appointments.cancelled_by',
    ])
    .where('appointments.starts_at', '>=', from)
    .where('appointments.starts_at', '<', to)
    .orderBy('appointments.starts_at')
    .execute();
  // One event per patient seen: "who saw whom" can be answered patient by patient.
  for (const r of rows) {
    scope.audit({ action: 'schedule.read', objectType: 'appointment', objectId: r.id, patientId: r.patient_id, details: { date } });
  }
  return rows.map((r) => ({
    id: r.id,
    patientId: r.patient_id,
    patientName: `${r.given_name} ${r.family_name}`,
    dateOfBirth: r.date_of_birth,
    startsAt: new Date(r.starts_at).toISOString(),
    endsAt: new Date(r.ends_at).toISOString(),
    mode: r.mode,
    reason: r.reason,
    status: r.status,
    cancelledBy: r.cancelled_by,
    rescheduledTo: r.rescheduled_to,
    consultationId: r.consultation_id,
  }));
}

export async function recordOutcome(scope: Scope, id: string, outcome: 'completed' | 'no_show', now = new Date()) {
  if (scope.principal.kind !== 'clinician') throw notFound();
  const row = await appointmentsInScope(scope).selectAll('appointments').where('appointments.id', '=', id).forUpdate().executeTakeFirst();
  if (!row) throw notFound();
  if (row.status === 'cancelled') throw new AppError('appointment_not_changeable', 'This consultation was cancelled.');
  if (new Date(row.starts_at).getTime() > now.getTime()) {
    throw new AppError('appointment_not_started', 'A consultation can be marked only once its time has come.');
  }
  await scope.tx.updateTable('appointments').set({ status: outcome, updated_at: now }).where('id', '=', id).execute();
  scope.audit({ action: 'appointment.outcome', objectType: 'appointment', objectId: id, patientId: row.patient_id, details: { outcome } });
  return loadView(scope, id);
}


import type { Scope } from '../../access/scope';
import { AppError, notFound } from '../../errors';
import { formatTime, parseTime } from './clinic-time';
import { manageableClinician } from './appointment-access';

export interface RuleInput {
  weekday: number;
  start: string; // HH:MM local
  end: string;
}

function overlapping(rules: RuleInput[]): boolean {
  for (let i = 0; i < rules.length; i++) {
    for (let j = i + 1; j < rules.length; j++) {
      const a = rules[i]!;
      const b = rules[j]!;
      if (a.weekday === b.weekday && parseTime(a.start) < parseTime(b.end) && parseTime(b.start) < parseTime(a.end)) return true;
    }
  }
  return false;
}

export async function readAvailability(scope: Scope, clinicianId: string, now = new Date()) {
  await manageableClinician(scope, clinicianId);
  const rules = await scope.tx
    .selectFrom('availability_rules')
    .select(['weekday', 'start_time', 'end_time'])
    .where('clinician_id', '=', clinicianId)
    .orderBy('weekday')
    .orderBy('start_time')
    .execute();
  const exceptions = await scope.tx
    .selectFrom('availability_exceptions')
    .select(['id', 'starts_at', 'ends_at', 'reason', 'note'])
    .where('clinician_id', '=', clinicianId)
    .where('ends_at', '>', now)
    .orderBy('starts_at')
    .execute();
  return {
    clinicianId,
    rules: rules.map((r) => ({ weekday: r.weekday, start: formatTime(parseTime(r.start_time)), end: formatTime(parseTime(r.end_time)) })),
    exceptions: exceptions.map((e) => ({
      id: e.id,
      startsAt: new Date(e.starts_at).toISOString(),
      endsAt: new Date(e.ends_at).toISOString(),
      reason: e.reason,
      note: e.note,
    })),
  };
}

/** Replaces the weekly pattern. Bookings already made are kept; new slots follow the new pattern. */
export async function replaceWeeklyAvailability(scope: Scope, clinicianId: string, rules: RuleInput[]) {
  await manageableClinician(scope, clinicianId);
  for (const r of rules) {
    if (parseTime(r.end) <= parseTime(r.start)) {
      throw new AppError('validation_failed', 'Each period must end after it starts.', { issues: [{ path: 'rules', message: 'Each period must end after it starts.' }] });
    }
  }
  if (overlapping(rules)) {
    throw new AppError('validation_failed', 'Two periods on the same day overlap.', { issues: [{ path: 'rules', message: 'Two periods on the same day overlap.' }] });
  }
  await scope.tx.deleteFrom('availability_rules').where('clinician_id', '=', clinicianId).execute();
  if (rules.length > 0) {
    await scope.tx
      .insertInto('availability_rules')
      .values(rules.map((r) => ({ clinician_id: clinicianId, weekday: r.weekday, start_time: r.start, end_time: r.end })))
      .execute();
  }
  scope.audit({ action: 'availability.update', objectType: 'clinician', objectId: clinicianId, details: { rules: rules.length } });
  return readAvailability(scope, clinicianId);
}

export async function addAvailabilityException(
  scope: Scope,
  clinicianId: string,
  input: { startsAt: string; endsAt: string; reason: 'leave' | 'blocked' | 'training' | 'other'; note?: string | undefined },
) {
  await manageableClinician(scope, clinicianId);
  if (new Date(input.endsAt).getTime() <= new Date(input.startsAt).getTime()) {
    throw new AppError('validation_failed', 'The end must be after the start.', { issues: [{ path: 'endsAt', message: 'The end must be after the start.' }] });
  }
  const row = await scope.tx
    .insertInto('availability_exceptions')
    .values({ clinician_id: clinicianId, starts_at: input.startsAt, ends_at: input.endsAt, reason: input.reason, note: input.note ?? null })
    .returning('id')
    .executeTakeFirstOrThrow();
  scope.audit({ action: 'availability.exception_add', objectType: 'availability_exception', objectId: row.id, details: { reason: input.reason } });
  return readAvailability(scope, clinicianId);
}

export async function removeAvailabilityException(scope: Scope, clinicianId: string, exceptionId: string) {
  await manageableClinician(scope, clinicianId);
  const gone = await scope.tx
    .deleteFrom('availability_exceptions')
    .where('id', '=', exceptionId)
    .where('clinician_id', '=', clinicianId)
    .returning('id')
    .executeTakeFirst();
  if (!gone) throw notFound();
  scope.audit({ action: 'availability.exception_remove', objectType: 'availability_exception', objectId: exceptionId });
  return readAvailability(scope, clinicianId);
}

import { z } from 'zod';
import { IsoDate, IsoDateTime, Uuid } from './common';

export const ConsultationMode = z.enum(['audio', 'video']);
export const AppointmentStatus = z.enum(['booked', 'cancelled', 'completed', 'no_show']);
const HhMm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, 'Use a 24-hour time such as 09:30.');

export const ClinicianList = z.object({ clinicians: z.array(z.object({ id: Uuid, displayName: z.string() })) });

export const SlotQuery = z.strictObject({
  clinicianId: Uuid.optional(),
  /** First clinic-local date to list (default today); for paging through later days. */
  from: IsoDate.optional(),
  days: z.coerce.number().int().min(1).max(90).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  /**
   * `true`: each time once, with one of the GPs free then (for "any GP"), so that a limit covers
   * more days. The GP is named on every slot.
   */
  onePerTime: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
});
export const SlotList = z.object({
  timeZone: z.string(),
  slotMinutes: z.number().int(),
  slots: z.array(z.object({ clinicianId: Uuid, clinicianName: z.string(), startsAt: IsoDateTime, endsAt: IsoDateTime })),
});

export const BookAppointmentInput = z.strictObject({
  clinicianId: Uuid,
  startsAt: IsoDateTime,
  mode: ConsultationMode,
  reason: z.string().trim().min(1, 'Tell the GP briefly why you are booking.').max(500, 'Keep the reason under 500 characters.'),
});

export const RescheduleInput = z.strictObject({
  startsAt: IsoDateTime,
  clinicianId: Uuid.optional(),
  mode: ConsultationMode.optional(),
});

export const OutcomeInput = z.strictObject({ outcome: z.enum(['completed', 'no_show']) });

export const Appointment = z.object({
  id: Uuid,
  clinician: z.object({ id: Uuid, displayName: z.string() }),
  startsAt: IsoDateTime,
  endsAt: IsoDateTime,
  mode: ConsultationMode,
  reason: z.string(),
  status: AppointmentStatus,
  cancelledBy: z.enum(['patient', 'clinician', 'staff']).nullable(),
  rescheduledFrom: Uuid.nullable(),
  /** Set on a booking that was moved: the booking that replaced it (when you can see it). */
  rescheduledTo: Uuid.nullable(),
  /** The consultation held for it, once it has ended: its notes (and any recording) are under it. */
  consultationId: Uuid.nullable(),
  createdAt: IsoDateTime,
});
export const AppointmentLists = z.object({
  upcoming: z.array(Appointment),
  past: z.array(Appointment),
  /** How many upcoming consultations a patient may hold at a time (booking is refused beyond it). */
  maxUpcoming: z.number().int(),
});

export const ScheduleQuery = z.strictObject({ date: IsoDate.optional() });
export const ClinicianSchedule = z.object({
  date: IsoDate,
  timeZone: z.string(),
  appointments: z.array(
    z.object({
      id: Uuid,
      patientName: z.string(),
      dateOfBirth: IsoDate,
      startsAt: IsoDateTime,
      endsAt: IsoDateTime,
      mode: ConsultationMode,
      reason: z.string(),
      status: AppointmentStatus,
      cancelledBy: z.enum(['patient', 'clinician', 'staff']).nullable(),
      rescheduledTo: Uuid.nullable(),
      /** The consultation held for it, once ended: the GP's notes are under it. */
      consultationId: Uuid.nullable(),
    }),
  ),
});

export const WeeklyRule = z.strictObject({ weekday: z.number().int().min(1).max(7), start: HhMm, end: HhMm });
export const ReplaceAvailabilityInput = z.strictObject({ rules: z.array(WeeklyRule).max(50) });
export const AvailabilityExceptionInput = z.strictObject({
  startsAt: IsoDateTime,
  endsAt: IsoDateTime,
  reason: z.enum(['leave', 'blocked', 'training', 'other']),
  note: z.string().trim().max(200).optional(),
});
export const Availability = z.object({
  clinicianId: Uuid,
  timeZone: z.string(),
  slotMinutes: z.number().int(),
  rules: z.array(z.object({ weekday: z.number().int(), start: z.string(), end: z.string() })),
  exceptions: z.array(z.object({ id: Uuid, startsAt: IsoDateTime, endsAt: IsoDateTime, reason: z.string(), note: z.string().nullable() })),
});

export const NotificationList = z.object({
  notifications: z.array(
    z.object({
      id: Uuid,
      kind: z.enum(['appointment_booked', 'appointment_cancelled', 'appointment_rescheduled']),
      appointmentId: Uuid.nullable(),
      appointmentStartsAt: IsoDateTime.nullable(),
      createdAt: IsoDateTime,
      read: z.boolean(),
    }),
  ),
});

import { z } from 'zod';
import { Appointment, RescheduleInput } from '../../contracts/appointments';
import { Uuid } from '../../contracts/common';
import { rescheduleAppointment as reschedule } from '../../modules/appointments/appointments';
import { defineRoute, patientIdsOf } from '../define-route';

export const rescheduleAppointment = defineRoute({
  method: 'POST',
  url: '/api/appointments/:appointmentId/reschedule',
  summary: 'Move an appointment to another slot, atomically: if the new slot is gone, nothing changes',
  tags: ['appointments'],
  idempotent: true,
  access: { permission: 'appointment.reschedule' },
  feature: 'rescheduling',
  params: z.strictObject({ appointmentId: Uuid }),
  body: RescheduleInput,
  response: Appointment,
  egress: (a) => patientIdsOf([a]),
  handler: async ({ scope, params, body, deps }) => reschedule(scope, deps.config.clinic, params.appointmentId, body),
});

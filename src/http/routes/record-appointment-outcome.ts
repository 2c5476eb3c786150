import { z } from 'zod';
import { Appointment, OutcomeInput } from '../../contracts/appointments';
import { Uuid } from '../../contracts/common';
import { recordOutcome } from '../../modules/appointments/appointments';
import { defineRoute, patientIdsOf } from '../define-route';

export const recordAppointmentOutcome = defineRoute({
  method: 'POST',
  url: '/api/appointments/:appointmentId/outcome',
  summary: 'Mark one of your consultations completed or a no-show (clinician)',
  tags: ['appointments'],
  access: { permission: 'appointment.outcome' },
  feature: 'appointments',
  params: z.strictObject({ appointmentId: Uuid }),
  body: OutcomeInput,
  response: Appointment,
  egress: (a) => patientIdsOf([a]),
  handler: async ({ scope, params, body }) => recordOutcome(scope, params.appointmentId, body.outcome),
});

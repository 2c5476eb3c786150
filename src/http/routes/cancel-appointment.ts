import { z } from 'zod';
import { Appointment } from '../../contracts/appointments';
import { Uuid } from '../../contracts/common';
import { cancelAppointment as cancel } from '../../modules/appointments/appointments';
import { defineRoute, patientIdsOf } from '../define-route';

export const cancelAppointment = defineRoute({
  method: 'POST',
  url: '/api/appointments/:appointmentId/cancel',
  summary: 'Cancel an upcoming appointment (the patient, or the clinician who holds it); frees the slot',
  tags: ['appointments'],
  idempotent: true,
  access: { permission: 'appointment.cancel' },
  feature: 'appointments',
  params: z.strictObject({ appointmentId: Uuid }),
  response: Appointment,
  egress: (a) => patientIdsOf([a]),
  handler: async ({ scope, params }) => cancel(scope, params.appointmentId),
});

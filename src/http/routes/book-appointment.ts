import { Appointment, BookAppointmentInput } from '../../contracts/appointments';
import { bookAppointment as book } from '../../modules/appointments/appointments';
import { defineRoute, patientIdsOf } from '../define-route';

export const bookAppointment = defineRoute({
  method: 'POST',
  url: '/api/appointments',
  summary: 'Book a slot as an audio or video consultation',
  tags: ['appointments'],
  idempotent: true,
  access: { permission: 'appointment.book' },
  feature: 'booking',
  body: BookAppointmentInput,
  response: Appointment,
  status: 201,
  egress: (a) => patientIdsOf([a]),
  handler: async ({ scope, body, deps }) => book(scope, deps.config.clinic, body),
});

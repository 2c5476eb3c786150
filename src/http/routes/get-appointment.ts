import { z } from 'zod';
import { Appointment } from '../../contracts/appointments';
import { Uuid } from '../../contracts/common';
import { readAppointment } from '../../modules/appointments/appointments';
import { defineRoute, patientIdsOf } from '../define-route';

export const getAppointment = defineRoute({
  method: 'GET',
  url: '/api/appointments/:appointmentId',
  summary: 'One of your appointments',
  tags: ['appointments'],
  access: { permission: 'appointment.read' },
  feature: 'appointments',
  params: z.strictObject({ appointmentId: Uuid }),
  response: Appointment,
  egress: (a) => patientIdsOf([a]),
  handler: async ({ scope, params }) => readAppointment(scope, params.appointmentId),
});

import { AppointmentLists } from '../../contracts/appointments';
import { listMyAppointments as list } from '../../modules/appointments/appointments';
import { defineRoute, patientIdsOf } from '../define-route';

export const listMyAppointments = defineRoute({
  method: 'GET',
  url: '/api/appointments',
  summary: "The signed-in patient's upcoming and past appointments",
  tags: ['appointments'],
  access: { permission: 'appointment.read' },
  feature: 'appointments',
  response: AppointmentLists,
  egress: (out) => patientIdsOf([...out.upcoming, ...out.past]),
  handler: async ({ scope, deps }) => ({ ...(await list(scope)), maxUpcoming: deps.config.clinic.maxFutureBookings }),
});

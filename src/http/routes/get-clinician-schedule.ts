import { ClinicianSchedule, ScheduleQuery } from '../../contracts/appointments';
import { clinicianDay } from '../../modules/appointments/appointments';
import { localParts } from '../../modules/appointments/clinic-time';
import { defineRoute, patientIdsOf } from '../define-route';

export const getClinicianSchedule = defineRoute({
  method: 'GET',
  url: '/api/schedule',
  summary: "The signed-in clinician's own day list (clinic's local date; default today)",
  tags: ['appointments'],
  access: { permission: 'schedule.read' },
  feature: 'appointments',
  query: ScheduleQuery,
  response: ClinicianSchedule,
  egress: (out) => patientIdsOf(out.appointments),
  handler: async ({ scope, query, deps }) => {
    const clinic = deps.config.clinic;
    const date = query.date ?? localParts(new Date(), clinic.timeZone).date;
    return { date, timeZone: clinic.timeZone, appointments: await clinicianDay(scope, clinic, date) };
  },
});

import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Consultation } from '../../contracts/consultations';
import { joinConsultation as join } from '../../modules/consultations/consultations';
import { defineRoute, patientIdsOf } from '../define-route';

export const joinConsultation = defineRoute({
  method: 'POST',
  url: '/api/appointments/:appointmentId/consultation',
  summary: "Join the appointment's consultation: the patient enters the waiting room, the clinician opens the call",
  tags: ['consultations'],
  access: { permission: 'consultation.join' },
  feature: 'consultation_join',
  params: z.strictObject({ appointmentId: Uuid }),
  response: Consultation,
  egress: (c) => patientIdsOf([c]),
  handler: async ({ scope, params, deps }) => join(scope, deps.consultations, params.appointmentId),
});

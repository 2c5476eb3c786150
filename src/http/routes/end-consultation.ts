import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Consultation } from '../../contracts/consultations';
import { endConsultation as end } from '../../modules/consultations/consultations';
import { defineRoute, patientIdsOf } from '../define-route';

export const endConsultation = defineRoute({
  method: 'POST',
  url: '/api/consultations/:consultationId/end',
  summary: 'The clinician ends the consultation; the appointment is completed and the call closed for both sides',
  tags: ['consultations'],
  access: { permission: 'consultation.end' },
  feature: 'consultation_join',
  params: z.strictObject({ consultationId: Uuid }),
  response: Consultation,
  egress: (c) => patientIdsOf([c]),
  handler: async ({ scope, params, deps }) => end(scope, deps.consultations, params.consultationId),
});

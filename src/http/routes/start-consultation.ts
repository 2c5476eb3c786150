import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Consultation } from '../../contracts/consultations';
import { startConsultation as start } from '../../modules/consultations/consultations';
import { defineRoute, patientIdsOf } from '../define-route';

export const startConsultation = defineRoute({
  method: 'POST',
  url: '/api/consultations/:consultationId/start',
  summary: 'The clinician starts the consultation',
  tags: ['consultations'],
  access: { permission: 'consultation.start' },
  feature: 'consultation_join',
  params: z.strictObject({ consultationId: Uuid }),
  response: Consultation,
  egress: (c) => patientIdsOf([c]),
  handler: async ({ scope, params, deps }) => start(scope, deps.consultations, params.consultationId),
});

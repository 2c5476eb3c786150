import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Consultation } from '../../contracts/consultations';
import { readConsultation } from '../../modules/consultations/consultations';
import { defineRoute, patientIdsOf } from '../define-route';

export const getConsultation = defineRoute({
  method: 'GET',
  url: '/api/consultations/:consultationId',
  summary: 'A consultation you take part in: its mode, status, pending requests, consents, recording and who is connected',
  tags: ['consultations'],
  access: { permission: 'consultation.read' },
  feature: 'consultation_join',
  params: z.strictObject({ consultationId: Uuid }),
  response: Consultation,
  egress: (c) => patientIdsOf([c]),
  handler: async ({ scope, params, deps }) => readConsultation(scope, deps.consultations, params.consultationId),
});

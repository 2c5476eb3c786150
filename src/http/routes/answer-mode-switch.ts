import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Consultation, ModeAnswerInput } from '../../contracts/consultations';
import { answerModeSwitch as answer } from '../../modules/consultations/consultations';
import { defineRoute, patientIdsOf } from '../define-route';

export const answerModeSwitch = defineRoute({
  method: 'POST',
  url: '/api/consultations/:consultationId/mode-requests/:requestId/answer',
  summary: "Agree to or decline the other side's request to switch to video (or withdraw your own with accept=false)",
  tags: ['consultations'],
  access: { permission: 'consultation.switch_mode' },
  feature: 'mode_switch',
  params: z.strictObject({ consultationId: Uuid, requestId: Uuid }),
  body: ModeAnswerInput,
  response: Consultation,
  egress: (c) => patientIdsOf([c]),
  handler: async ({ scope, params, body, deps }) => answer(scope, deps.consultations, params.consultationId, params.requestId, body.accept),
});

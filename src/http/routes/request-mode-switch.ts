import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Consultation, ModeRequestInput } from '../../contracts/consultations';
import { requestModeSwitch as request } from '../../modules/consultations/consultations';
import { defineRoute, patientIdsOf } from '../define-route';

export const requestModeSwitch = defineRoute({
  method: 'POST',
  url: '/api/consultations/:consultationId/mode-requests',
  summary: 'Ask to switch the call to video (the other side must agree; the patient always) or back to audio (at once)',
  tags: ['consultations'],
  access: { permission: 'consultation.switch_mode' },
  feature: 'mode_switch',
  params: z.strictObject({ consultationId: Uuid }),
  body: ModeRequestInput,
  response: Consultation,
  egress: (c) => patientIdsOf([c]),
  handler: async ({ scope, params, body, deps }) => request(scope, deps.consultations, params.consultationId, body.mode),
});

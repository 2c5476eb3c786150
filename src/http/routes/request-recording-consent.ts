import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Consultation, ConsentRequestInput } from '../../contracts/consultations';
import { requestRecordingConsent as request } from '../../modules/consultations/consultations';
import { defineRoute, patientIdsOf } from '../define-route';

export const requestRecordingConsent = defineRoute({
  method: 'POST',
  url: '/api/consultations/:consultationId/consent-requests',
  summary: "The clinician asks the patient, in the call, for consent to record audio or video",
  tags: ['recordings'],
  access: { permission: 'recording.consent_request' },
  feature: 'recording',
  params: z.strictObject({ consultationId: Uuid }),
  body: ConsentRequestInput,
  response: Consultation,
  egress: (c) => patientIdsOf([c]),
  handler: async ({ scope, params, body, deps }) => request(scope, deps.consultations, params.consultationId, body.media),
});

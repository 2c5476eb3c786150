import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Consultation, ConsentInput } from '../../contracts/consultations';
import { decideRecordingConsent as decide } from '../../modules/consultations/consultations';
import { stopConsultationRecording } from '../../modules/recordings/recordings';
import { defineRoute, patientIdsOf } from '../define-route';

export const decideRecordingConsent = defineRoute({
  method: 'POST',
  url: '/api/consultations/:consultationId/consents',
  summary: 'The patient grants, declines or withdraws consent to record audio or video; withdrawing audio stops the recording',
  tags: ['recordings'],
  idempotent: true,
  access: { permission: 'recording.consent' },
  feature: 'recording',
  params: z.strictObject({ consultationId: Uuid }),
  body: ConsentInput,
  response: Consultation,
  egress: (c) => patientIdsOf([c]),
  handler: async ({ scope, params, body, deps }) => {
    const { consultation, audioWithdrawn } = await decide(scope, deps.consultations, params.consultationId, body.media, body.decision);
    if (audioWithdrawn) {
      scope.afterCommit(() => {
        stopConsultationRecording(deps.scopes, deps.recordings, params.consultationId, 'consent withdrawn').catch((err: Error) =>
          deps.logger.error({ errName: err.name }, 'could not stop a recording after consent was withdrawn'),
        );
      });
    }
    return consultation;
  },
});

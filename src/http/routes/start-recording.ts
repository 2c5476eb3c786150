import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { RecordingUpload } from '../../contracts/consultations';
import { startRecording as start } from '../../modules/recordings/recordings';
import { defineRoute, patientIdsOf } from '../define-route';

export const startRecording = defineRoute({
  method: 'POST',
  url: '/api/consultations/:consultationId/recordings',
  summary: "Create the recording of a live consultation (needs the patient's consent to audio); the server binds it to the consultation",
  tags: ['recordings'],
  access: { permission: 'recording.create' },
  feature: 'recording',
  params: z.strictObject({ consultationId: Uuid }),
  response: RecordingUpload,
  status: 201,
  egress: (r) => patientIdsOf([r]),
  handler: async ({ scope, params, deps }) => start(scope, deps.recordings, params.consultationId),
});

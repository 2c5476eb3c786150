import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { RecordingUpload } from '../../contracts/consultations';
import { finishRecording as finish } from '../../modules/recordings/recordings';
import { defineRoute, patientIdsOf } from '../define-route';

export const finishRecording = defineRoute({
  method: 'POST',
  url: '/api/recordings/:recordingId/finish',
  summary: 'The last chunk is in: finalise the recording (made seekable and sealed in the background)',
  tags: ['recordings'],
  access: { permission: 'recording.upload' },
  feature: 'recording',
  params: z.strictObject({ recordingId: Uuid }),
  response: RecordingUpload,
  egress: (r) => patientIdsOf([r]),
  handler: async ({ scope, params, deps }) => finish(scope, deps.recordings, params.recordingId),
});

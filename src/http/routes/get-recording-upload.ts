import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { RecordingUpload } from '../../contracts/consultations';
import { readUploadState } from '../../modules/recordings/recordings';
import { defineRoute, patientIdsOf } from '../define-route';

export const getRecordingUpload = defineRoute({
  method: 'GET',
  url: '/api/recordings/:recordingId/upload',
  summary: 'Where an upload stands (the next chunk expected), to resume after a reconnect',
  tags: ['recordings'],
  access: { permission: 'recording.upload' },
  feature: 'recording',
  params: z.strictObject({ recordingId: Uuid }),
  response: RecordingUpload,
  egress: (r) => patientIdsOf([r]),
  handler: async ({ scope, params, deps }) => readUploadState(scope, deps.recordings, params.recordingId),
});

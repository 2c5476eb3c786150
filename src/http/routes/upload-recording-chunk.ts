import { z } from 'zod';
import { ChunkParams, RecordingUpload } from '../../contracts/consultations';
import { uploadChunk } from '../../modules/recordings/recordings';
import { defineRoute, patientIdsOf } from '../define-route';

export const uploadRecordingChunk = defineRoute({
  method: 'PUT',
  url: '/api/recordings/:recordingId/chunks/:seq',
  summary:
    'Upload chunk `seq` (from 0, in order) of a recording as application/octet-stream. Sending a chunk again with the same bytes is harmless; chunk_out_of_order and chunk_conflict carry details.nextSeq.',
  tags: ['recordings'],
  access: { permission: 'recording.upload' },
  feature: 'recording',
  params: ChunkParams,
  body: z.instanceof(Buffer),
  rawBody: { maxBytes: (config) => config.recordings.maxChunkBytes },
  response: RecordingUpload,
  egress: (r) => patientIdsOf([r]),
  handler: async ({ scope, params, body, deps }) => uploadChunk(scope, deps.recordings, params.recordingId, params.seq, body),
});

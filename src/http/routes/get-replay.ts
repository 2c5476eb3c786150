import { z } from 'zod';
import { Uuid } from '../../contracts/common';
import { Replay } from '../../contracts/consultations';
import { readReplay } from '../../modules/recordings/recordings';
import { defineRoute, patientIdsOf } from '../define-route';

export const getReplay = defineRoute({
  method: 'GET',
  url: '/api/recordings/:recordingId',
  summary: 'One consultation replay: date, clinician, mode, duration',
  tags: ['recordings'],
  access: { permission: 'recording.read' },
  feature: 'replay_list',
  params: z.strictObject({ recordingId: Uuid }),
  response: Replay,
  egress: (r) => patientIdsOf([r]),
  handler: async ({ scope, params }) => readReplay(scope, params.recordingId),
});

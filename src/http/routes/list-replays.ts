import { ReplayList } from '../../contracts/consultations';
import { listReplays as list } from '../../modules/recordings/recordings';
import { defineRoute, patientIdsOf } from '../define-route';

export const listReplays = defineRoute({
  method: 'GET',
  url: '/api/replays',
  summary: "Consultation replays: the patient's own recorded consultations, or a clinician's own consultations' recordings",
  tags: ['recordings'],
  access: { permission: 'recording.read' },
  feature: 'replay_list',
  response: ReplayList,
  egress: (out) => patientIdsOf(out.replays),
  handler: async ({ scope }) => list(scope),
});

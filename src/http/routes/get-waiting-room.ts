import { WaitingRoom } from '../../contracts/consultations';
import { waitingRoom } from '../../modules/consultations/consultations';
import { defineRoute, patientIdsOf } from '../define-route';

export const getWaitingRoom = defineRoute({
  method: 'GET',
  url: '/api/waiting-room',
  summary: "The clinician's consultations of today that are not over, with who is waiting",
  tags: ['consultations'],
  access: { permission: 'consultation.waiting_room' },
  feature: 'consultation_join',
  response: WaitingRoom,
  egress: (out) => patientIdsOf(out.consultations),
  handler: async ({ scope, deps }) => waitingRoom(scope, deps.consultations),
});

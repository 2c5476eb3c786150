import { z } from 'zod';
import { Ok, Uuid } from '../../contracts/common';
import { AppError } from '../../errors';
import { signallingMembership } from '../../modules/consultations/consultations';
import { defineRoute } from '../define-route';

/**
 * The consultation's signalling WebSocket. The upgrade is handled by http/signalling.ts with the
 * same checks (session, permission, membership, origin); a plain GET here makes those checks and
 * then says the connection must be a WebSocket.
 */
export const connectConsultationSignal = defineRoute({
  method: 'GET',
  url: '/api/consultations/:consultationId/signal',
  summary:
    'WebSocket: relays WebRTC offers, answers and ICE candidates between the two parties of one consultation (JSON messages, see contracts/consultations.ts). A plain GET answers 426.',
  tags: ['consultations'],
  access: { permission: 'consultation.signal' },
  feature: 'consultation_join',
  params: z.strictObject({ consultationId: Uuid }),
  response: Ok,
  egress: 'none',
  handler: async ({ scope, params }) => {
    await signallingMembership(scope, params.consultationId);
    throw new AppError('upgrade_required', 'Connect to this address with a WebSocket.', { headers: { upgrade: 'websocket', connection: 'Upgrade' } });
  },
});

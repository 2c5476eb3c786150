import { z } from 'zod';
import { Ok, Uuid } from '../../contracts/common';
import { revokeMySession } from '../../modules/identity/manage-sessions';
import { defineRoute } from '../define-route';

export const revokeSession = defineRoute({
  method: 'DELETE',
  url: '/api/account/sessions/:sessionId',
  summary: 'Sign out one of your own sessions',
  tags: ['account'],
  access: { permission: 'session.revoke' },
  params: z.strictObject({ sessionId: Uuid }),
  response: Ok,
  egress: 'none',
  handler: async ({ scope, params, deps }) => {
    await revokeMySession(scope, deps.sessions, params.sessionId);
    return { ok: true as const };
  },
});

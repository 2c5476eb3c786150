import { Ok } from '../../contracts/common';
import { signOut as revokeCurrent } from '../../modules/identity/manage-sessions';
import { defineRoute } from '../define-route';

export const signOut = defineRoute({
  method: 'POST',
  url: '/api/auth/sign-out',
  summary: "Sign out: revokes the caller's own session (any stage)",
  tags: ['auth'],
  access: { public: true, reason: 'ends only the calling session, whatever its stage; without one it just clears the cookie' },
  response: Ok,
  egress: 'none',
  handler: async ({ scope, session, clearSession, deps }) => {
    if (session) await revokeCurrent(scope, deps.sessions);
    clearSession();
    return { ok: true as const };
  },
});

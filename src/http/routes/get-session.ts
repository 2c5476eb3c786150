import { SessionInfo } from '../../contracts/auth';
import { describeSession } from '../../modules/identity/describe-session';
import { csrfTokenFor } from '../../modules/identity/session-tokens';
import { defineRoute } from '../define-route';

export const getSession = defineRoute({
  method: 'GET',
  url: '/api/session',
  summary: 'Who is signed in on this browser, and the CSRF token for its requests',
  tags: ['auth'],
  access: { public: true, reason: 'answers "not signed in" to anyone; details only for the session holder' },
  feature: 'account',
  response: SessionInfo,
  egress: (out) => ('patientId' in out && typeof out.patientId === 'string' ? [out.patientId] : []),
  handler: async ({ scope, session, deps }) => {
    if (!session) return { authenticated: false as const };
    return describeSession(scope, { csrfToken: csrfTokenFor(session.token), expiresAt: session.expiresAt }, deps.sessions.policy, deps.config.consultations);
  },
});

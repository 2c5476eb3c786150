import { SessionList } from '../../contracts/auth';
import { listMySessions } from '../../modules/identity/manage-sessions';
import { defineRoute } from '../define-route';

export const listSessions = defineRoute({
  method: 'GET',
  url: '/api/account/sessions',
  summary: "The caller's own active sessions (devices)",
  tags: ['account'],
  access: { permission: 'session.read' },
  response: SessionList,
  egress: 'none',
  handler: async ({ scope, deps }) => ({ sessions: await listMySessions(scope, deps.sessions.policy) }),
});

import { MfaCodeInput, MfaEnrolled } from '../../contracts/auth';
import { isAuthenticated } from '../../access/principal';
import { AppError } from '../../errors';
import { confirmMfaEnrolment as confirm } from '../../modules/identity/enrol-mfa';
import { defineRoute } from '../define-route';

export const confirmMfaEnrolment = defineRoute({
  method: 'POST',
  url: '/api/auth/mfa/enrol/confirm',
  summary: 'Finish setting up the authenticator app with a first code; returns recovery codes once',
  tags: ['auth'],
  access: { permission: 'mfa.enrol' },
  body: MfaCodeInput,
  response: MfaEnrolled,
  egress: 'none',
  run: 'flow',
  handler: async ({ body, principal, request, deps, setSession }) => {
    if (!isAuthenticated(principal)) throw new AppError('not_found', 'Not found');
    const { recoveryCodes, session } = await confirm(deps.identity, principal, request, body.code);
    setSession(session);
    return { recoveryCodes, csrfToken: session.csrfToken };
  },
});

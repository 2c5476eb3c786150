import { MfaCodeInput, SignInResult } from '../../contracts/auth';
import { AppError } from '../../errors';
import { verifyMfa as verify } from '../../modules/identity/verify-mfa';
import { defineRoute } from '../define-route';

export const verifyMfa = defineRoute({
  method: 'POST',
  url: '/api/auth/mfa/verify',
  summary: 'Second sign-in step: an authenticator code or a recovery code',
  tags: ['auth'],
  access: { permission: 'mfa.verify' },
  body: MfaCodeInput,
  response: SignInResult,
  egress: 'none',
  run: 'flow',
  handler: async ({ body, principal, request, deps, setSession }) => {
    if (principal.kind !== 'pending') throw new AppError('not_found', 'Not found');
    const issued = await verify(deps.identity, principal, request, body.code);
    setSession(issued);
    return { stage: issued.stage, csrfToken: issued.csrfToken };
  },
});

import { ChangePasswordInput, SignInResult } from '../../contracts/auth';
import { isAuthenticated } from '../../access/principal';
import { AppError } from '../../errors';
import { changePassword as change } from '../../modules/identity/change-password';
import { defineRoute } from '../define-route';

export const changePassword = defineRoute({
  method: 'POST',
  url: '/api/account/password',
  summary: 'Change the password; signs out every other session and rotates this one',
  tags: ['account'],
  access: { permission: 'password.change' },
  body: ChangePasswordInput,
  response: SignInResult,
  egress: 'none',
  run: 'flow',
  handler: async ({ body, principal, request, deps, setSession }) => {
    if (!isAuthenticated(principal)) throw new AppError('not_found', 'Not found');
    const issued = await change(deps.identity, principal, request, body);
    setSession(issued);
    return { stage: issued.stage, csrfToken: issued.csrfToken };
  },
});

import { SignInInput, SignInResult } from '../../contracts/auth';
import { signIn as signInWithPassword } from '../../modules/identity/sign-in';
import { signOut as endSession } from '../../modules/identity/manage-sessions';
import { defineRoute } from '../define-route';

export const signIn = defineRoute({
  method: 'POST',
  url: '/api/auth/sign-in',
  summary: 'Sign in with email and password; may ask for a second factor next',
  tags: ['auth'],
  access: { public: true, reason: 'signing in is how a caller becomes a principal' },
  body: SignInInput,
  response: SignInResult,
  egress: 'none',
  run: 'flow',
  handler: async ({ body, request, deps, setSession, session }) => {
    const issued = await signInWithPassword(deps.identity, request, body);
    // The browser's previous session (if any) ends: one browser, one live session.
    if (session) await deps.scopes.run(session.principal, request, (scope) => endSession(scope, deps.sessions));
    setSession(issued);
    return { stage: issued.stage, csrfToken: issued.csrfToken };
  },
});

import { RegisterPatientInput, SignInResult } from '../../contracts/auth';
import { registerPatient as register } from '../../modules/identity/register-patient';
import { signOut as endSession } from '../../modules/identity/manage-sessions';
import { defineRoute } from '../define-route';

export const registerPatient = defineRoute({
  method: 'POST',
  url: '/api/auth/register',
  summary: 'Register as a patient; signs the new patient in',
  tags: ['auth'],
  access: { public: true, reason: 'anyone may register as a patient' },
  feature: 'registration',
  body: RegisterPatientInput,
  response: SignInResult,
  status: 201,
  egress: 'none',
  run: 'flow',
  handler: async ({ body, request, deps, setSession, session }) => {
    const issued = await register(deps.identity, request, body);
    // The browser's previous session (if any) ends: one browser, one live session.
    if (session) await deps.scopes.run(session.principal, request, (scope) => endSession(scope, deps.sessions));
    setSession(issued);
    return { stage: issued.stage, csrfToken: issued.csrfToken };
  },
});

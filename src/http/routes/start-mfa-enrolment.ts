import { MfaEnrolment } from '../../contracts/auth';
import { startMfaEnrolment as start } from '../../modules/identity/enrol-mfa';
import { defineRoute } from '../define-route';

export const startMfaEnrolment = defineRoute({
  method: 'POST',
  url: '/api/auth/mfa/enrol',
  summary: 'Begin setting up an authenticator app: a secret, its otpauth URI and a QR code',
  tags: ['auth'],
  access: { permission: 'mfa.enrol' },
  response: MfaEnrolment,
  egress: 'none',
  handler: async ({ scope, deps }) => start(scope, deps.identity),
});

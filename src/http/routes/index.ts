import type { AnyRoute } from '../define-route';
import { changePassword } from './change-password';
import { confirmMfaEnrolment } from './confirm-mfa-enrolment';
import { getHealth } from './get-health';
import { getProfile } from './get-profile';
import { getSession } from './get-session';
import { listSessions } from './list-sessions';
import { listStaff } from './list-staff';
import { registerPatient } from './register-patient';
import { revokeSession } from './revoke-session';
import { searchAuditEvents } from './search-audit-events';
import { signIn } from './sign-in';
import { signOut } from './sign-out';
import { startMfaEnrolment } from './start-mfa-enrolment';
import { updateProfile } from './update-profile';
import { verifyAuditTrail } from './verify-audit-trail';
import { verifyMfa } from './verify-mfa';

export const allRoutes: AnyRoute[] = [
  getHealth,
  getSession,
  registerPatient,
  signIn,
  signOut,
  verifyMfa,
  startMfaEnrolment,
  confirmMfaEnrolment,
  changePassword,
  listSessions,
  revokeSession,
  getProfile,
  updateProfile,
  listStaff,
  searchAuditEvents,
  verifyAuditTrail,
];

import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../../access/request-context';
import { isUniqueViolation } from '../../db';
import { AppError } from '../../errors';
import type { IdentityDeps } from './identity-deps';
import { normaliseNhsNumber } from './nhs-number';
import { assertAcceptablePassword, hashPassword } from './passwords';
import { claimAttempt, throttleKey } from './sign-in';
import { startSession, type IssuedSession } from './sessions';

export interface RegisterPatientInput {
  givenName: string;
  familyName: string;
  dateOfBirth: string;
  email: string;
  password: string;
  nhsNumber?: string | undefined;
}

export async function registerPatient(deps: IdentityDeps, request: RequestContext, input: RegisterPatientInput): Promise<IssuedSession> {
  const dob = new Date(`${input.dateOfBirth}T00:00:00Z`);
  const today = new Date();
  if (Number.isNaN(dob.getTime()) || dob > today || today.getUTCFullYear() - dob.getUTCFullYear() > 130) {
    throw new AppError('validation_failed', 'Enter a real date of birth.', {
      issues: [{ path: 'dateOfBirth', message: 'Enter a real date of birth.' }],
    });
  }
  let nhsNumber: string | null = null;
  if (input.nhsNumber && input.nhsNumber.trim() !== '') {
    nhsNumber = normaliseNhsNumber(input.nhsNumber);
    if (!nhsNumber) {
      const message = 'That NHS number is not valid. Check the 10 digits.';
      throw new AppError('invalid_nhs_number', message, { issues: [{ path: 'nhsNumber', message }] });
    }
  }
  assertAcceptablePassword(input.password, [input.givenName, input.familyName, input.email.split('@')[0] ?? '']);
  // Registrations per address are limited before the (deliberately slow) hash is computed.
  if (request.clientIp) {
    await claimAttempt(deps, request, throttleKey('register', request.clientIp), deps.registrationsPerAddress, { countAddress: false });
  }
  const passwordHash = await hashPassword(input.password);
  try {
    return await createPatient(deps, request, input, passwordHash, nhsNumber);
  } catch (err) {
    if (nhsNumber && isUniqueViolation(err, 'patient_profiles_nhs_number_key')) {
      // Saying "that NHS number is registered" would tell anyone who holds someone's number
      // that they are a patient here. The account is created without it, and the clinic is
      // told through the audit trail to check the record with the patient.
      const session = await createPatient(deps, request, input, passwordHash, null);
      await deps.scopes.system('registration follow-up', request, async (scope) =>
        scope.audit({ action: 'patient.nhs_number_conflict', outcome: 'failure', objectType: 'patient', objectId: session.accountId, patientId: session.accountId }),
      );
      return session;
    }
    throw err;
  }
}

async function createPatient(
  deps: IdentityDeps,
  request: RequestContext,
  input: RegisterPatientInput,
  passwordHash: string,
  nhsNumber: string | null,
): Promise<IssuedSession & { accountId: string }> {
  // The new patient's own principal: every row below passes RLS as theirs, and the audit names them.
  const accountId = randomUUID();
  const sessionId = randomUUID();
  const principal = { kind: 'patient' as const, accountId, sessionId };
  try {
    return await deps.scopes.run(principal, request, async (scope) => {
      await scope.tx
        .insertInto('accounts')
        .values({ id: accountId, kind: 'patient', email: input.email, display_name: input.givenName })
        .execute();
      await scope.tx.insertInto('account_credentials').values({ account_id: accountId, password_hash: passwordHash }).execute();
      await scope.tx
        .insertInto('patient_profiles')
        .values({
          account_id: accountId,
          given_name: input.givenName,
          family_name: input.familyName,
          date_of_birth: input.dateOfBirth,
          nhs_number: nhsNumber,
        })
        .execute();
      scope.audit({ action: 'patient.register', objectType: 'patient', objectId: accountId, patientId: accountId });
      return { ...(await startSession(scope, accountId, 'full', deps.sessions.policy, sessionId)), accountId };
    });
  } catch (err) {
    if (isUniqueViolation(err, 'accounts_email_key')) {
      const message = 'An account with this email already exists. Sign in instead.';
      throw new AppError('email_taken', message, { issues: [{ path: 'email', message }] });
    }
    throw err;
  }
}

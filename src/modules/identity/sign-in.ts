import { createHash, randomUUID } from 'node:crypto';
import type { Principal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import { AppError } from '../../errors';
import type { IdentityDeps } from './identity-deps';
import { clearFailures, countRecentFailures, findLoginByEmail, pruneFailures, recordFailure } from './identity-repo';
import { dummyPasswordHash, verifyPassword } from './passwords';
import { startSession, type IssuedSession } from './sessions';

export const THROTTLE_WINDOW_MS = 15 * 60_000;
export const MAX_FAILURES_PER_ACCOUNT = 5;
export const MAX_FAILURES_PER_ADDRESS = 30;

export function throttleKey(kind: 'email' | 'ip' | 'mfa', value: string): Buffer {
  return createHash('sha256').update(`confidant-throttle:${kind}:${value}`, 'utf8').digest();
}

/** Refuses with 429 when the account key or the client address has failed too often recently. */
export async function assertNotThrottled(deps: IdentityDeps, request: RequestContext, accountKey: Buffer, limit = MAX_FAILURES_PER_ACCOUNT) {
  const ipKey = request.clientIp ? throttleKey('ip', request.clientIp) : null;
  const since = new Date(Date.now() - THROTTLE_WINDOW_MS);
  const counts = await deps.scopes.system('sign-in throttle check', request, (scope) =>
    countRecentFailures(scope.tx, ipKey ? [accountKey, ipKey] : [accountKey], since),
  );
  for (const c of counts) {
    const max = c.keyHash.equals(accountKey) ? limit : MAX_FAILURES_PER_ADDRESS;
    if (c.count >= max) {
      const retryAfter = Math.max(1, Math.ceil((c.oldest.getTime() + THROTTLE_WINDOW_MS - Date.now()) / 1000));
      throw new AppError('too_many_attempts', 'Too many attempts. Wait a few minutes and try again.', {
        headers: { 'retry-after': String(retryAfter) },
      });
    }
  }
}

const GENERIC = 'The email or password is not right.';

/**
 * Unknown email and wrong password give the same answer after the same work
 * (a full argon2 verification either way), so the answer reveals no account.
 */
export async function signIn(deps: IdentityDeps, request: RequestContext, input: { email: string; password: string }): Promise<IssuedSession> {
  const emailKey = throttleKey('email', input.email);
  await assertNotThrottled(deps, request, emailKey);

  const login = await deps.scopes.system('sign-in', request, (scope) => findLoginByEmail(scope.tx, input.email));
  const passwordOk = await verifyPassword(login?.password_hash ?? (await dummyPasswordHash()), input.password);

  if (!login || !passwordOk || login.disabled_at) {
    await deps.scopes.system('sign-in', request, async (scope) => {
      await recordFailure(scope.tx, request.clientIp ? [emailKey, throttleKey('ip', request.clientIp)] : [emailKey]);
      if (Math.random() < 0.01) await pruneFailures(scope.tx, new Date(Date.now() - THROTTLE_WINDOW_MS));
      scope.audit({
        action: 'auth.sign_in',
        outcome: 'failure',
        ...(login ? { objectType: 'account', objectId: login.id, patientId: login.kind === 'patient' ? login.id : null } : {}),
        details: { reason: !login ? 'unknown_account' : login.disabled_at ? 'account_disabled' : 'wrong_password' },
      });
    });
    throw new AppError('invalid_credentials', GENERIC);
  }

  const stage = login.mfa_enabled_at ? 'mfa' : login.mfa_required ? 'enrol' : 'full';
  const sessionId = randomUUID();
  const ids = { accountId: login.id, sessionId };
  const principal: Principal =
    stage !== 'full'
      ? { kind: 'pending', stage, accountKind: login.kind, role: login.staff_role, ...ids }
      : login.kind === 'staff'
        ? { kind: 'staff', role: login.staff_role!, ...ids }
        : login.kind === 'clinician'
          ? { kind: 'clinician', ...ids }
          : { kind: 'patient', ...ids };
  return deps.scopes.run(principal, request, async (scope) => {
    await clearFailures(scope.tx, emailKey);
    scope.audit({
      action: 'auth.sign_in',
      objectType: 'account',
      objectId: login.id,
      patientId: login.kind === 'patient' ? login.id : null,
      details: { stage },
    });
    return startSession(scope, login.id, stage, deps.sessions.policy, sessionId);
  });
}

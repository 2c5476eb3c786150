import { createHash, randomUUID } from 'node:crypto';
import type { Principal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import { AppError } from '../../errors';
import type { IdentityDeps } from './identity-deps';
import { countRecentFailures, findLoginByEmail, lockThrottleKeys, pruneFailures, recordAttempt, settleAttempt } from './identity-repo';
import { dummyPasswordHash, verifyPassword } from './passwords';
import { startSession, type IssuedSession } from './sessions';

export const THROTTLE_WINDOW_MS = 15 * 60_000;
export const MAX_FAILURES_PER_ACCOUNT = 5;
export const MAX_FAILURES_PER_ADDRESS = 30;

export function throttleKey(kind: 'email' | 'ip' | 'mfa' | 'register', value: string): Buffer {
  return createHash('sha256').update(`confidant-throttle:${kind}:${value}`, 'utf8').digest();
}

export interface Attempt {
  accountKey: Buffer;
  ids: string[];
}

/**
 * Counts and records an attempt in one step, under a lock on its keys, before anything is
 * verified: concurrent guesses are counted one after another, so a burst gets no more tries
 * than a sequence. The record stays as a failure unless the caller settles it on success.
 */
export async function claimAttempt(
  deps: IdentityDeps,
  request: RequestContext,
  accountKey: Buffer,
  limit = MAX_FAILURES_PER_ACCOUNT,
  opts: { countAddress?: boolean } = {},
): Promise<Attempt> {
  const keys = request.clientIp && opts.countAddress !== false ? [accountKey, throttleKey('ip', request.clientIp)] : [accountKey];
  const since = new Date(Date.now() - THROTTLE_WINDOW_MS);
  return deps.scopes.system('sign-in throttle', request, async (scope) => {
    await lockThrottleKeys(scope.tx, keys);
    for (const c of await countRecentFailures(scope.tx, keys, since)) {
      const max = c.keyHash.equals(accountKey) ? limit : MAX_FAILURES_PER_ADDRESS;
      if (c.count >= max) {
        const retryAfter = Math.max(1, Math.ceil((c.oldest.getTime() + THROTTLE_WINDOW_MS - Date.now()) / 1000));
        throw new AppError('too_many_attempts', 'Too many attempts. Wait a few minutes and try again.', {
          headers: { 'retry-after': String(retryAfter) },
        });
      }
    }
    if (Math.random() < 0.01) await pruneFailures(scope.tx, since);
    return { accountKey, ids: await recordAttempt(scope.tx, keys) };
  });
}

const GENERIC = 'The email or password is not right.';

/**
 * Unknown email and wrong password give the same answer after the same work
 * (a full argon2 verification either way), so the answer reveals no account.
 */
export async function signIn(deps: IdentityDeps, request: RequestContext, input: { email: string; password: string }): Promise<IssuedSession> {
  const attempt = await claimAttempt(deps, request, throttleKey('email', input.email));

  const login = await deps.scopes.system('sign-in', request, (scope) => findLoginByEmail(scope.tx, input.email));
  const passwordOk = await verifyPassword(login?.password_hash ?? (await dummyPasswordHash()), input.password);

  if (!login || !passwordOk || login.disabled_at) {
    await deps.scopes.system('sign-in', request, async (scope) => {
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
    await settleAttempt(scope.tx, attempt.accountKey, attempt.ids);
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

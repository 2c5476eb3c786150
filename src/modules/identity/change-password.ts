import type { AuthenticatedPrincipal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import { AppError } from '../../errors';
import type { IdentityDeps } from './identity-deps';
import { findOwnAccount, findOwnCredentials, revokeSessions, settleAttempt } from './identity-repo';
import { assertAcceptablePassword, hashPassword, verifyPassword } from './passwords';
import { claimAttempt, throttleKey } from './sign-in';
import { announceRevocation, startSession, type IssuedSession } from './sessions';

/**
 * Changes the password after checking the current one, then signs out every session of
 * the account (this one included) and issues a fresh session for the caller.
 */
export async function changePassword(
  deps: IdentityDeps,
  principal: AuthenticatedPrincipal,
  request: RequestContext,
  input: { currentPassword: string; newPassword: string },
): Promise<IssuedSession> {
  const attempt = await claimAttempt(deps, request, throttleKey('email', principal.accountId));
  // Argon2 runs outside any transaction: a slow hash must not hold a connection.
  const { account, creds } = await deps.scopes.run(principal, request, async (scope) => ({
    account: await findOwnAccount(scope.tx, principal.accountId),
    creds: await findOwnCredentials(scope.tx, principal.accountId),
  }));
  if (!account || !creds) throw new AppError('not_found', 'Not found');
  const patientId = account.kind === 'patient' ? account.id : null;
  if (!(await verifyPassword(creds.password_hash, input.currentPassword))) {
    await deps.scopes.run(principal, request, async (scope) => {
      scope.audit({ action: 'password.change', outcome: 'failure', objectType: 'account', objectId: account.id, patientId });
    });
    const message = 'Your current password is not right.';
    throw new AppError('invalid_credentials', message, { issues: [{ path: 'currentPassword', message }] });
  }
  // The current password was right: this was not a guess, so it does not count against the limit.
  await deps.scopes.system('sign-in throttle', request, (scope) => settleAttempt(scope.tx, attempt.accountKey, attempt.ids));
  if (input.newPassword === input.currentPassword) {
    const message = 'Choose a password different from your current one.';
    throw new AppError('weak_password', message, { issues: [{ path: 'newPassword', message }] });
  }
  assertAcceptablePassword(input.newPassword, [account.display_name, account.email.split('@')[0] ?? ''], 'newPassword');
  const hash = await hashPassword(input.newPassword);
  return deps.scopes.run(principal, request, async (scope) => {
    await scope.tx
      .updateTable('account_credentials')
      .set({ password_hash: hash, password_changed_at: new Date() })
      .where('account_id', '=', account.id)
      .execute();
    const revoked = await revokeSessions(scope.tx, account.id, 'password_changed');
    await announceRevocation(scope, deps.sessions, account.id, 'all');
    scope.audit({
      action: 'password.change',
      objectType: 'account',
      objectId: account.id,
      patientId,
      details: { sessionsRevoked: revoked.length },
    });
    return startSession(scope, account.id, 'full', deps.sessions.policy);
  });
}

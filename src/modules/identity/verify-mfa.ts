import type { Principal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import { AppError } from '../../errors';
import type { IdentityDeps } from './identity-deps';
import { findOwnCredentials, revokeSessions, settleAttempt } from './identity-repo';
import { claimAttempt, throttleKey } from './sign-in';
import { announceRevocation, startSession, type IssuedSession } from './sessions';
import { hashRecoveryCode, matchTotpStep } from './totp';

type Pending = Extract<Principal, { kind: 'pending' }>;

/** Second step of sign-in: an authenticator code or an unused recovery code. Rotates the session. */
export async function verifyMfa(deps: IdentityDeps, principal: Pending, request: RequestContext, code: string): Promise<IssuedSession> {
  const attempt = await claimAttempt(deps, request, throttleKey('mfa', principal.accountId));
  const result = await deps.scopes.run(principal, request, async (scope) => {
    const creds = await findOwnCredentials(scope.tx, principal.accountId);
    let method: 'totp' | 'recovery_code' | null = null;
    const secret = creds?.mfa_secret ? deps.mfaSecrets.open(principal.accountId, 'active', creds.mfa_secret) : null;
    if (creds && secret) {
      const step = matchTotpStep(secret, code);
      if (step !== null && step > (creds.mfa_last_step ?? -1)) {
        // Claimed with a condition, not read-then-write: of two requests with the same code
        // at once, the second waits for the first's row lock and then matches nothing.
        const claimed = await scope.tx
          .updateTable('account_credentials')
          .set({ mfa_last_step: step })
          .where('account_id', '=', principal.accountId)
          .where((eb) => eb.or([eb('mfa_last_step', 'is', null), eb('mfa_last_step', '<', step)]))
          .returning('account_id')
          .executeTakeFirst();
        if (claimed) method = 'totp';
      }
      if (!method && code.length > 6) {
        const used = await scope.tx
          .updateTable('mfa_recovery_codes')
          .set({ used_at: new Date() })
          .where('account_id', '=', principal.accountId)
          .where('code_hash', '=', hashRecoveryCode(code))
          .where('used_at', 'is', null)
          .returning('id')
          .executeTakeFirst();
        if (used) method = 'recovery_code';
      }
    }
    const patientId = principal.accountKind === 'patient' ? principal.accountId : null;
    if (!method) {
      scope.audit({ action: 'auth.mfa_verify', outcome: 'failure', objectType: 'account', objectId: principal.accountId, patientId });
      return null;
    }
    await settleAttempt(scope.tx, attempt.accountKey, attempt.ids);
    await revokeSessions(scope.tx, principal.accountId, 'mfa_completed', { sessionId: principal.sessionId });
    await announceRevocation(scope, deps.sessions, principal.accountId, [principal.sessionId]);
    scope.audit({ action: 'auth.mfa_verify', objectType: 'account', objectId: principal.accountId, patientId, details: { method } });
    return startSession(scope, principal.accountId, 'full', deps.sessions.policy);
  });
  if (!result) throw new AppError('invalid_mfa_code', 'That code is not right. Check your authenticator app and try again.');
  return result;
}

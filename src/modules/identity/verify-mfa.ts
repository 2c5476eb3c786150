import type { Principal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import { AppError } from '../../errors';
import type { IdentityDeps } from './identity-deps';
import { findOwnCredentials, recordFailure, revokeSessions } from './identity-repo';
import { assertNotThrottled, throttleKey } from './sign-in';
import { announceRevocation, startSession, type IssuedSession } from './sessions';
import { hashRecoveryCode, matchTotpStep } from './totp';

type Pending = Extract<Principal, { kind: 'pending' }>;

/** Second step of sign-in: an authenticator code or an unused recovery code. Rotates the session. */
export async function verifyMfa(deps: IdentityDeps, principal: Pending, request: RequestContext, code: string): Promise<IssuedSession> {
  const key = throttleKey('mfa', principal.accountId);
  await assertNotThrottled(deps, request, key);
  const result = await deps.scopes.run(principal, request, async (scope) => {
    const creds = await findOwnCredentials(scope.tx, principal.accountId);
    let method: 'totp' | 'recovery_code' | null = null;
    if (creds?.mfa_secret) {
      const step = matchTotpStep(creds.mfa_secret, code);
      if (step !== null && step > (creds.mfa_last_step ?? -1)) {
        await scope.tx.updateTable('account_credentials').set({ mfa_last_step: step }).where('account_id', '=', principal.accountId).execute();
        method = 'totp';
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
      await recordFailure(scope.tx, [key]);
      scope.audit({ action: 'auth.mfa_verify', outcome: 'failure', objectType: 'account', objectId: principal.accountId, patientId });
      return null;
    }
    await revokeSessions(scope.tx, principal.accountId, 'mfa_completed', { sessionId: principal.sessionId });
    await announceRevocation(scope, principal.accountId, [principal.sessionId]);
    scope.audit({ action: 'auth.mfa_verify', objectType: 'account', objectId: principal.accountId, patientId, details: { method } });
    return startSession(scope, principal.accountId, 'full', deps.sessions.policy);
  });
  if (!result) throw new AppError('invalid_mfa_code', 'That code is not right. Check your authenticator app and try again.');
  return result;
}

import type { AuthenticatedPrincipal } from '../../access/principal';
import type { RequestContext } from '../../access/request-context';
import type { Scope } from '../../access/scope';
import { AppError } from '../../errors';
import type { IdentityDeps } from './identity-deps';
import { findOwnAccount, findOwnCredentials, revokeSessions, settleAttempt } from './identity-repo';
import { claimAttempt, throttleKey } from './sign-in';
import { announceRevocation, startSession, type IssuedSession } from './sessions';
import { hashRecoveryCode, matchTotpStep, newRecoveryCodes, newTotpSecret, otpauthUri, qrSvg } from './totp';

function patientOf(p: AuthenticatedPrincipal): string | null {
  const kind = p.kind === 'pending' ? p.accountKind : p.kind;
  return kind === 'patient' ? p.accountId : null;
}

/** Starts TOTP enrolment: a new secret, held as pending until a code proves the app has it. */
export async function startMfaEnrolment(scope: Scope, identity: Pick<IdentityDeps, 'issuer' | 'mfaSecrets'>) {
  const p = scope.principal as AuthenticatedPrincipal;
  const account = await findOwnAccount(scope.tx, p.accountId);
  if (!account) throw new AppError('not_found', 'Not found');
  if (account.mfa_enabled_at) throw new AppError('mfa_already_enabled', 'Two-step sign-in is already set up for this account.');
  const secret = newTotpSecret();
  await scope.tx
    .updateTable('account_credentials')
    .set({ mfa_pending_secret: identity.mfaSecrets.seal(p.accountId, 'pending', secret) })
    .where('account_id', '=', p.accountId)
    .execute();
  scope.audit({ action: 'mfa.enrol_start', objectType: 'account', objectId: p.accountId, patientId: patientOf(p) });
  const uri = otpauthUri(secret, account.email, identity.issuer);
  return { secret, otpauthUri: uri, qrSvg: await qrSvg(uri) };
}

/** Confirms enrolment with a first code; returns recovery codes once and a fresh full session. */
export async function confirmMfaEnrolment(
  deps: IdentityDeps,
  principal: AuthenticatedPrincipal,
  request: RequestContext,
  code: string,
): Promise<{ recoveryCodes: string[]; session: IssuedSession }> {
  const attempt = await claimAttempt(deps, request, throttleKey('mfa', principal.accountId));
  const result = await deps.scopes.run(principal, request, async (scope) => {
    const creds = await findOwnCredentials(scope.tx, principal.accountId);
    const account = await findOwnAccount(scope.tx, principal.accountId);
    if (!creds || !account) throw new AppError('not_found', 'Not found');
    if (account.mfa_enabled_at) throw new AppError('mfa_already_enabled', 'Two-step sign-in is already set up for this account.');
    const pending = creds.mfa_pending_secret ? deps.mfaSecrets.open(principal.accountId, 'pending', creds.mfa_pending_secret) : null;
    if (!pending) throw new AppError('bad_request', 'Start setting up two-step sign-in first.');
    const step = matchTotpStep(pending, code);
    if (step === null) {
      scope.audit({ action: 'mfa.enrol_confirm', outcome: 'failure', objectType: 'account', objectId: principal.accountId, patientId: patientOf(principal) });
      return null;
    }
    // Claimed with a condition: a confirmation sent twice at once enables MFA (and issues
    // recovery codes) once; the second waits for the first's row lock, then matches nothing.
    const enabled = await scope.tx
      .updateTable('accounts')
      .set({ mfa_enabled_at: new Date() })
      .where('id', '=', principal.accountId)
      .where('mfa_enabled_at', 'is', null)
      .returning('id')
      .executeTakeFirst();
    if (!enabled) throw new AppError('mfa_already_enabled', 'Two-step sign-in is already set up for this account.');
    await scope.tx
      .updateTable('account_credentials')
      .set({ mfa_secret: deps.mfaSecrets.seal(principal.accountId, 'active', pending), mfa_pending_secret: null, mfa_last_step: step })
      .where('account_id', '=', principal.accountId)
      .execute();
    await scope.tx.deleteFrom('mfa_recovery_codes').where('account_id', '=', principal.accountId).execute();
    const recoveryCodes = newRecoveryCodes();
    await scope.tx
      .insertInto('mfa_recovery_codes')
      .values(recoveryCodes.map((c) => ({ account_id: principal.accountId, code_hash: hashRecoveryCode(c) })))
      .execute();
    await settleAttempt(scope.tx, attempt.accountKey, attempt.ids);
    scope.audit({ action: 'mfa.enrol_confirm', objectType: 'account', objectId: principal.accountId, patientId: patientOf(principal) });
    // A change of strength: every session signed in without the second factor ends, and the
    // one that did it is replaced by a new one.
    await revokeSessions(scope.tx, principal.accountId, 'mfa_enrolled');
    await announceRevocation(scope, deps.sessions, principal.accountId, 'all');
    const session = await startSession(scope, principal.accountId, 'full', deps.sessions.policy);
    return { recoveryCodes, session };
  });
  if (!result) throw new AppError('invalid_mfa_code', 'That code is not right. Check your authenticator app and try again.');
  return result;
}

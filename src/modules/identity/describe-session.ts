import type { AuthenticatedPrincipal } from '../../access/principal';
import { permissionsOf } from '../../access/permissions';
import type { Scope } from '../../access/scope';
import { notFound } from '../../errors';
import { findOwnAccount } from './identity-repo';
import type { SessionPolicy } from './sessions';

/** "Who am I": the signed-in account as its owner may see it. */
export async function describeSession(
  scope: Scope,
  session: { csrfToken: string; expiresAt: Date },
  policy: SessionPolicy,
  clinic: { joinEarlyMs: number },
) {
  const p = scope.principal as AuthenticatedPrincipal;
  const account = await findOwnAccount(scope.tx, p.accountId);
  if (!account) throw notFound();
  scope.audit({ action: 'account.read', objectType: 'account', objectId: account.id, patientId: account.kind === 'patient' ? account.id : null });
  return {
    authenticated: true as const,
    stage: p.kind === 'pending' ? p.stage : ('full' as const),
    csrfToken: session.csrfToken,
    account: {
      id: account.id,
      kind: account.kind,
      role: account.staff_role,
      displayName: account.display_name,
      email: account.email,
      mfaEnabled: account.mfa_enabled_at !== null,
    },
    permissions: permissionsOf(p),
    idleTimeoutSeconds: Math.floor(policy.idleMs / 1000),
    consultationJoinEarlySeconds: Math.floor(clinic.joinEarlyMs / 1000),
    expiresAt: session.expiresAt.toISOString(),
    ...(account.kind === 'patient' ? { patientId: account.id } : {}),
  };
}

import type { AuthenticatedPrincipal } from '../../access/principal';
import type { Scope } from '../../access/scope';
import { notFound } from '../../errors';
import { listOwnSessions, revokeSessions } from './identity-repo';
import { announceRevocation, type SessionDirectory, type SessionPolicy } from './sessions';

function self(scope: Scope) {
  const p = scope.principal as AuthenticatedPrincipal;
  const kind = p.kind === 'pending' ? p.accountKind : p.kind;
  return { accountId: p.accountId, sessionId: p.sessionId, patientId: kind === 'patient' ? p.accountId : null };
}

export async function signOut(scope: Scope, directory: SessionDirectory): Promise<void> {
  const me = self(scope);
  await revokeSessions(scope.tx, me.accountId, 'signed_out', { sessionId: me.sessionId });
  await announceRevocation(scope, directory, me.accountId, [me.sessionId]);
  scope.audit({ action: 'auth.sign_out', objectType: 'session', objectId: me.sessionId, patientId: me.patientId });
}

export async function listMySessions(scope: Scope, policy: SessionPolicy) {
  const me = self(scope);
  const rows = await listOwnSessions(scope.tx, me.accountId, policy.idleMs);
  scope.audit({ action: 'session.list', objectType: 'account', objectId: me.accountId, patientId: me.patientId });
  return rows
    .filter((r) => r.stage === 'full')
    .map((r) => ({
      id: r.id,
      current: r.id === me.sessionId,
      createdAt: r.created_at.toISOString(),
      lastSeenAt: r.last_seen_at.toISOString(),
      clientIp: r.client_ip,
      userAgent: r.user_agent,
    }));
}

/** Signs out one of the caller's own sessions; anyone else's id answers 404 like a missing one. */
export async function revokeMySession(scope: Scope, directory: SessionDirectory, sessionId: string): Promise<void> {
  const me = self(scope);
  const revoked = await revokeSessions(scope.tx, me.accountId, 'revoked_by_owner', { sessionId });
  if (revoked.length === 0) throw notFound();
  await announceRevocation(scope, directory, me.accountId, revoked);
  scope.audit({ action: 'session.revoke', objectType: 'session', objectId: sessionId, patientId: me.patientId });
}

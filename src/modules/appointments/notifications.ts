import type { Scope } from '../../access/scope';
import { isAuthenticated } from '../../access/principal';
import { notFound } from '../../errors';

function me(scope: Scope): string {
  if (!isAuthenticated(scope.principal)) throw notFound();
  return scope.principal.accountId;
}

export async function listMyNotifications(scope: Scope) {
  const recipient = me(scope);
  const rows = await scope.tx
    .selectFrom('notifications as n')
    .leftJoin('appointments as a', 'a.id', 'n.appointment_id')
    .select(['n.id', 'n.kind', 'n.appointment_id', 'n.created_at', 'n.read_at', 'a.starts_at', 'a.patient_id'])
    .where('n.recipient_id', '=', recipient)
    .orderBy('n.created_at', 'desc')
    .limit(50)
    .execute();
  scope.audit({ action: 'notification.list', objectType: 'account', objectId: recipient, patientId: scope.principal.kind === 'patient' ? recipient : null });
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    appointmentId: r.appointment_id,
    appointmentStartsAt: r.starts_at ? new Date(r.starts_at).toISOString() : null,
    patientId: r.patient_id,
    createdAt: r.created_at.toISOString(),
    read: r.read_at !== null,
  }));
}

export async function markNotificationRead(scope: Scope, id: string) {
  const recipient = me(scope);
  const row = await scope.tx
    .updateTable('notifications')
    .set({ read_at: new Date() })
    .where('id', '=', id)
    .where('recipient_id', '=', recipient)
    .returning('id')
    .executeTakeFirst();
  if (!row) throw notFound();
}

import { sql, type Selectable } from '../../db';
import type { Scope } from '../../access/scope';
import { describePrincipal, isAuthenticated } from '../../access/principal';
import type { Alert } from '../../contracts/guard';
import { notFound } from '../../errors';
import type { GuardAlertsTable } from '../../db/schema';

type AlertRow = Selectable<GuardAlertsTable>;

export function toAlert(r: AlertRow): Alert {
  return {
    id: r.id,
    raisedAt: r.raised_at.toISOString(),
    rule: r.rule,
    severity: r.severity,
    feature: r.feature,
    action: r.action,
    summary: r.summary,
    eventSeqs: r.event_seqs.map(Number),
    eventCount: r.event_count,
    actorId: r.actor_id,
    incidentId: r.incident_id,
    acknowledgedAt: r.acknowledged_at ? r.acknowledged_at.toISOString() : null,
    acknowledgedBy: r.acknowledged_by_label,
  };
}

/** The newest alerts, unacknowledged ones first (the DPO; system work). Row-level security refuses anyone else. */
export async function listAlerts(scope: Scope, limit = 50): Promise<Alert[]> {
  const rows = await scope.tx
    .selectFrom('guard_alerts')
    .selectAll()
    .orderBy(sql`acknowledged_at is null`, 'desc')
    .orderBy('raised_at', 'desc')
    .limit(limit)
    .execute();
  return rows.map(toAlert);
}

export async function getAlert(scope: Scope, id: string): Promise<Alert | null> {
  const row = await scope.tx.selectFrom('guard_alerts').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toAlert(row) : null;
}

/** The DPO says they have seen it: once; audited. Acknowledging switches nothing back on. */
export async function acknowledgeAlert(scope: Scope, id: string): Promise<Alert> {
  const p = scope.principal;
  if (!isAuthenticated(p)) throw notFound();
  const row = await scope.tx
    .updateTable('guard_alerts')
    .set({ acknowledged_at: sql<Date>`now()`, acknowledged_by: p.accountId, acknowledged_by_label: describePrincipal(p) })
    .where('id', '=', id)
    .where('acknowledged_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  if (!row) {
    // Already acknowledged: the same answer again (a double click); unknown: 404.
    const existing = await getAlert(scope, id);
    if (!existing) throw notFound();
    return existing;
  }
  scope.audit({ action: 'guard.alert.acknowledge', objectType: 'guard_alert', objectId: id, details: { rule: row.rule, severity: row.severity } });
  return toAlert(row);
}

import { sql } from '../../db';
import { AUDIT_WAKE_CHANNEL } from '../../audit/audit-log';
import type { Scope, Scopes } from '../../access/scope';
import { noRequest } from '../../access/request-context';
import type { GuardRule, GuardSeverity } from '../../contracts/guard';
import { FEATURES, killFeature, type FeatureName } from '../features/features';
import { judge, PROBE_TABLES, type ProbeTable, type WatchedEvent } from './rules';

/** Sent on commit of a new alert (`alert:<id>`) or a changed throttle (`throttle`): every process re-reads. */
export const GUARD_CHANNEL = 'confidant_guard';
/** Sent with a critical audit event (src/access/scope.ts): every process's detector looks at once. */
export const GUARD_WAKE_CHANNEL = AUDIT_WAKE_CHANNEL;

export interface GuardSettings {
  pollMs: number;
  probeThreshold: number;
  probeWindowMs: number;
  throttleMs: number;
  volumePatientsPerHour: number;
}

interface GuardLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  fatal(obj: object, msg: string): void;
}

/** Events judged per transaction: a backlog is worked through in bounded steps. */
const BATCH_SEQS = 5_000;
/** A burst of one kind of signal gathers into the alert it opened for this long. */
const GATHER_MS = 10 * 60_000;
/** Each alert keeps its first triggering events' numbers; the count covers all of them. */
const KEEP_SEQS = 100;
/** How often one staff principal's patients of the last hour are counted, at most. */
const VOLUME_EVERY_MS = 10_000;

/** What one pass did, for the caller (tests, the drill's report). */
export interface PassResult {
  /** Another process held the cursor: it is judging these events. */
  busy: boolean;
  judged: number;
  alerts: string[];
}

/**
 * Detection: judges every audit event once it has committed, whichever process wrote it, by
 * tailing the audit chain by sequence number from a cursor in the database. Each pass holds the
 * cursor's row lock, so across processes each event is judged exactly once, and what the rules
 * do about it (an alert, an incident, a feature switched off, a throttle) commits together with
 * the cursor's move: a crash in between leaves the events to be judged again, never skipped.
 *
 * Every process runs one. It looks every `pollMs`, and at once when a critical event's writer
 * says so (GUARD_WAKE_CHANNEL): the notification only hurries it, the chain is what it reads.
 */
export class Detector {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<PassResult> | undefined;
  private again = false;
  private stopped = true;
  private failures = 0;
  /** When each staff principal's volume was last counted here. */
  private readonly volumeCheckedAt = new Map<string, number>();

  constructor(
    private readonly scopes: Scopes,
    private readonly settings: GuardSettings,
    private readonly logger: GuardLogger,
    /** Told of each alert this process raised, after its commit (the webhook). */
    private readonly onRaised: (alertId: string) => void = () => undefined,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Look now (a critical event was written): joins a pass in progress with one more after it. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  private schedule(ms: number) {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runUntilCaughtUp();
    }, ms);
    this.timer.unref();
  }

  private async runUntilCaughtUp(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    let delay = this.settings.pollMs;
    try {
      do {
        this.again = false;
        let result: PassResult;
        do {
          this.running = this.pass();
          result = await this.running;
        } while (!result.busy && result.judged >= BATCH_SEQS && !this.stopped);
      } while (this.again && !this.stopped);
      this.failures = 0;
    } catch (err) {
      this.failures++;
      delay = Math.min(this.settings.pollMs * 2 ** this.failures, 5_000);
      this.logger.warn({ errName: (err as Error).name, errCode: (err as { code?: unknown }).code, retryInMs: delay }, 'detection pass failed; it will look again');
    } finally {
      this.running = undefined;
    }
    this.schedule(delay);
  }

  /**
   * One pass: the events past the cursor (up to BATCH_SEQS of them), judged, and the cursor moved,
   * in one transaction. `judged` counts sequence numbers passed, whatever the rules made of them.
   */
  async pass(): Promise<PassResult> {
    // Most looks find nothing new: a read-only look first, so an idle poll takes no lock and
    // writes nothing (no WAL, no flush).
    const behind = await this.scopes.run(
      { kind: 'system', reason: 'breach guard: detection' },
      noRequest('guard'),
      async (scope) => {
        const r = await sql<{ behind: boolean }>`select coalesce((select max(seq) from audit_events) > (select last_seq from guard_cursor), false) as behind`.execute(scope.tx);
        return r.rows[0]?.behind ?? false;
      },
      { readOnly: true },
    );
    if (!behind) return { busy: false, judged: 0, alerts: [] };
    const raised: string[] = [];
    const result = await this.scopes.system('breach guard: detection', noRequest('guard'), async (scope) => {
      const cursor = await sql<{ last_seq: number }>`select last_seq from guard_cursor for update skip locked`.execute(scope.tx);
      const from = cursor.rows[0]?.last_seq;
      if (from === undefined) return { busy: true, judged: 0, alerts: [] };
      const top = await sql<{ seq: number | null }>`select max(seq) as seq from audit_events`.execute(scope.tx);
      const upto = Math.min(top.rows[0]?.seq ?? from, from + BATCH_SEQS);
      if (upto <= from) return { busy: false, judged: 0, alerts: [] };
      // Only what a rule could care about leaves the database: failures and denials, and staff
      // touching a patient. A patient reading their own record, the bulk of the chain, stays.
      const rows = await sql<{
        seq: number;
        occurred_at: Date;
        actor_kind: string;
        actor_id: string | null;
        action: string;
        object_type: string | null;
        object_id: string | null;
        patient_id: string | null;
        outcome: 'success' | 'denied' | 'failure';
        details: string | null;
      }>`select seq, occurred_at, actor_kind, actor_id, action, object_type, object_id, patient_id, outcome, details
           from audit_events
          where seq > ${from} and seq <= ${upto}
            and (outcome <> 'success' or (actor_kind in ('clinician', 'staff') and patient_id is not null))
          order by seq`.execute(scope.tx);
      const events = rows.rows.map(toWatched);
      raised.push(...(await this.judgeAll(scope, events)));
      await sql`update guard_cursor set last_seq = ${upto}, moved_at = now()`.execute(scope.tx);
      return { busy: false, judged: upto - from, alerts: raised };
    });
    for (const id of raised) this.onRaised(id);
    return result;
  }

  private async judgeAll(scope: Scope, events: WatchedEvent[]): Promise<string[]> {
    const signals = new Map<string, { rule: GuardRule; severity: GuardSeverity; feature: FeatureName | null; what: string; events: WatchedEvent[] }>();
    const probes: { e: WatchedEvent; actorId: string; type: ProbeTable; id: string }[] = [];
    const touched = new Set<string>();
    for (const e of events) {
      const v = judge(e);
      if (!v) continue;
      if (v.kind === 'signal') {
        const key = `${v.rule}/${v.feature ?? ''}`;
        const group = signals.get(key) ?? { rule: v.rule, severity: v.severity, feature: v.feature, what: v.what, events: [] };
        group.events.push(e);
        signals.set(key, group);
      } else if (v.kind === 'probe') probes.push({ e, actorId: v.actorId, type: v.objectType, id: v.objectId });
      else touched.add(v.actorId);
    }
    const raised: string[] = [];
    for (const s of signals.values()) {
      const id = await this.contain(scope, s);
      if (id) raised.push(id);
    }
    if (probes.length > 0) raised.push(...(await this.probing(scope, probes)));
    if (touched.size > 0) raised.push(...(await this.volume(scope, touched)));
    return raised;
  }

  /**
   * A critical signal: the feature it implicates off in every process (its NOTIFY goes with this
   * commit), an alert and an incident holding the events. While the feature stays off, later
   * events gather into that alert (unacknowledged, within GATHER_MS of its last event).
   */
  private async contain(
    scope: Scope,
    s: { rule: GuardRule; severity: GuardSeverity; feature: FeatureName | null; what: string; events: WatchedEvent[] },
  ): Promise<string | null> {
    const seqs = s.events.map((e) => e.seq);
    let disabled = false;
    if (s.feature) {
      const state = await scope.tx.selectFrom('features').select('enabled').where('name', '=', s.feature).executeTakeFirst();
      if (state?.enabled) {
        await killFeature(scope, s.feature, `Switched off automatically: ${s.rule} rule (${s.what}), audit event ${seqs[0]}`);
        disabled = true;
      }
    }
    // A burst gathers into the alert it opened; a feature switched off again (someone had switched
    // it back on) is news, and gets an alert of its own.
    const open = disabled ? null : await this.openAlert(scope, s.rule, s.feature, null);
    if (open) {
      await this.gather(scope, open, seqs);
      scope.audit({ action: 'guard.alert.gather', objectType: 'guard_alert', objectId: open.id, details: { rule: s.rule, events: seqs.length, firstSeq: seqs[0]! } });
      return null;
    }
    const featureWords = s.feature ? FEATURES[s.feature].toLowerCase() : null;
    const done = disabled ? ` ${cap(featureWords!)} was switched off automatically.` : s.feature ? ` ${cap(featureWords!)} was already off.` : '';
    const summary = `${cap(s.what)} (${plural(seqs.length, 'event')}).${done}`;
    return this.raise(scope, {
      rule: s.rule,
      severity: s.severity,
      feature: s.feature,
      action: disabled ? 'feature_disabled' : 'none',
      summary,
      seqs,
      actorId: null,
      incident: true,
    });
  }

  /** Not-found answers on ids that exist (so are someone else's): counted per principal over the window. */
  private async probing(scope: Scope, probes: { e: WatchedEvent; actorId: string; type: ProbeTable; id: string }[]): Promise<string[]> {
    const hitters = new Set<string>();
    for (const p of probes) {
      const table = PROBE_TABLES[p.type];
      const exists = await sql<{ one: number }>`select 1 as one from ${sql.table(table)} where id = ${p.id}`.execute(scope.tx);
      if (exists.rows.length === 0) continue;
      await sql`insert into guard_probe_hits (actor_id, at, seq) values (${p.actorId}, ${p.e.occurredAt}, ${p.e.seq}) on conflict do nothing`.execute(scope.tx);
      hitters.add(p.actorId);
    }
    const raised: string[] = [];
    const windowStart = new Date(Date.now() - this.settings.probeWindowMs);
    for (const actorId of hitters) {
      const hits = await sql<{ seq: number }>`select seq from guard_probe_hits where actor_id = ${actorId} and at > ${windowStart} order by seq`.execute(scope.tx);
      if (hits.rows.length < this.settings.probeThreshold) continue;
      const seqs = hits.rows.map((r) => r.seq);
      const throttled = await sql<{ alert_id: string }>`select alert_id from guard_throttles where actor_id = ${actorId} and until > now()`.execute(scope.tx);
      if (throttled.rows[0]) {
        // Already slowed down: the alert that did it gathers these too.
        const open = await this.openAlert(scope, 'probing', null, actorId);
        if (open) await this.gather(scope, open, seqs.filter((q) => q > open.lastSeq));
        continue;
      }
      const minutes = Math.round(this.settings.throttleMs / 60_000);
      const id = await this.raise(scope, {
        rule: 'probing',
        severity: 'high',
        feature: null,
        action: 'throttled',
        summary: `One account got ${seqs.length} not-found answers on records that exist but are not theirs within ${Math.round(this.settings.probeWindowMs / 1000)} s (enumeration). Its requests are refused for ${minutes} minutes.`,
        seqs,
        actorId,
        incident: false,
      });
      const until = new Date(Date.now() + this.settings.throttleMs);
      await sql`insert into guard_throttles (actor_id, until, alert_id) values (${actorId}, ${until}, ${id})
                on conflict (actor_id) do update set until = excluded.until, alert_id = excluded.alert_id, created_at = now()`.execute(scope.tx);
      scope.audit({ action: 'guard.throttle', objectType: 'account', objectId: actorId, details: { alert: id, minutes } });
      await sql`select pg_notify(${GUARD_CHANNEL}, 'throttle')`.execute(scope.tx);
      raised.push(id);
    }
    // Hits older than the window are no longer counted by anyone.
    await sql`delete from guard_probe_hits where at < ${new Date(Date.now() - this.settings.probeWindowMs * 2)}`.execute(scope.tx);
    return raised;
  }

  /** Staff principals touching more distinct patients in the last hour than the threshold. */
  private async volume(scope: Scope, actors: Set<string>): Promise<string[]> {
    const raised: string[] = [];
    const now = Date.now();
    for (const actorId of actors) {
      if (now - (this.volumeCheckedAt.get(actorId) ?? 0) < VOLUME_EVERY_MS) continue;
      this.volumeCheckedAt.set(actorId, now);
      const counted = await sql<{ patients: number; first_seq: number; last_seq: number }>`
        select count(distinct patient_id)::int as patients, min(seq) as first_seq, max(seq) as last_seq
          from audit_events
         where actor_id = ${actorId} and patient_id is not null and outcome = 'success'
           and occurred_at > now() - interval '1 hour'`.execute(scope.tx);
      const c = counted.rows[0];
      if (!c || c.patients <= this.settings.volumePatientsPerHour) continue;
      // One alert an hour per principal: the DPO is told once, not on every later read.
      const recent = await scope.tx
        .selectFrom('guard_alerts')
        .select('id')
        .where('rule', '=', 'volume')
        .where('actor_id', '=', actorId)
        .where('raised_at', '>', new Date(now - 3_600_000))
        .executeTakeFirst();
      if (recent) continue;
      raised.push(
        await this.raise(scope, {
          rule: 'volume',
          severity: 'medium',
          feature: null,
          action: 'none',
          summary: `One staff account touched ${c.patients} different patients' records in the last hour (threshold ${this.settings.volumePatientsPerHour}).`,
          seqs: [c.first_seq, c.last_seq],
          actorId,
          incident: false,
        }),
      );
    }
    if (this.volumeCheckedAt.size > 10_000) this.volumeCheckedAt.clear();
    return raised;
  }

  private async openAlert(scope: Scope, rule: GuardRule, feature: FeatureName | null, actorId: string | null) {
    let q = scope.tx
      .selectFrom('guard_alerts')
      .select(['id', 'incident_id', 'event_seqs'])
      .where('rule', '=', rule)
      .where('acknowledged_at', 'is', null)
      .where('last_event_at', '>', new Date(Date.now() - GATHER_MS));
    q = feature === null ? q.where('feature', 'is', null) : q.where('feature', '=', feature);
    q = actorId === null ? q.where('actor_id', 'is', null) : q.where('actor_id', '=', actorId);
    const row = await q.orderBy('raised_at', 'desc').limit(1).forUpdate().executeTakeFirst();
    if (!row) return null;
    const seqs = row.event_seqs.map(Number);
    return { id: row.id, incidentId: row.incident_id, lastSeq: seqs.length ? Math.max(...seqs) : 0 };
  }

  private async gather(scope: Scope, open: { id: string; incidentId: string | null }, seqs: number[]) {
    if (seqs.length === 0) return;
    await sql`update guard_alerts
                 set event_seqs = (event_seqs || ${seqs}::bigint[])[1:${KEEP_SEQS}],
                     event_count = event_count + ${seqs.length},
                     last_event_at = clock_timestamp()
               where id = ${open.id}`.execute(scope.tx);
    if (open.incidentId) {
      await sql`update incidents set event_seqs = (event_seqs || ${seqs}::bigint[])[1:1000], event_count = event_count + ${seqs.length}
                 where id = ${open.incidentId}`.execute(scope.tx);
    }
  }

  /** An alert (and for a critical one an incident), its email to each DPO through the outbox, audited, announced on commit. */
  private async raise(
    scope: Scope,
    a: {
      rule: GuardRule;
      severity: GuardSeverity;
      feature: FeatureName | null;
      action: 'feature_disabled' | 'throttled' | 'none';
      summary: string;
      seqs: number[];
      actorId: string | null;
      incident: boolean;
    },
  ): Promise<string> {
    let incidentId: string | null = null;
    if (a.incident) {
      const incident = await scope.tx
        .insertInto('incidents')
        .values({ opened_by: 'breach guard', rule: a.rule, severity: a.severity, feature: a.feature, event_seqs: a.seqs.slice(0, 1000), event_count: a.seqs.length })
        .returning('id')
        .executeTakeFirstOrThrow();
      incidentId = incident.id;
      scope.audit({ action: 'incident.open', objectType: 'incident', objectId: incidentId, details: { rule: a.rule, severity: a.severity, feature: a.feature, events: a.seqs.length } });
    }
    const alert = await scope.tx
      .insertInto('guard_alerts')
      .values({
        // The moment it is raised, not the transaction's start: what the drill and bench measure to.
        raised_at: sql<Date>`clock_timestamp()`,
        last_event_at: sql<Date>`clock_timestamp()`,
        rule: a.rule,
        severity: a.severity,
        feature: a.feature,
        action: a.action,
        summary: a.summary.slice(0, 500),
        event_seqs: a.seqs.slice(0, KEEP_SEQS),
        event_count: a.seqs.length,
        actor_id: a.actorId,
        incident_id: incidentId,
        acknowledged_at: null,
        acknowledged_by: null,
        acknowledged_by_label: null,
        webhook_sent_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    // The DPOs are emailed (the message names the alert, never a patient or what was seen).
    const dpos = await scope.tx.selectFrom('accounts').select('id').where('kind', '=', 'staff').where('staff_role', '=', 'dpo').where('disabled_at', 'is', null).execute();
    if (dpos.length > 0) {
      await scope.tx
        .insertInto('outbox')
        .values(dpos.map((d) => ({ recipient_id: d.id, channel: 'email' as const, template: 'guard_alert', alert_id: alert.id })))
        .execute();
    }
    scope.audit({
      action: 'guard.alert',
      objectType: 'guard_alert',
      objectId: alert.id,
      ...(a.actorId ? { details: { rule: a.rule, severity: a.severity, action: a.action, events: a.seqs.length, firstSeq: a.seqs[0]!, actor: a.actorId, emailed: dpos.length } } : {
        details: { rule: a.rule, severity: a.severity, action: a.action, events: a.seqs.length, firstSeq: a.seqs[0]!, feature: a.feature, emailed: dpos.length },
      }),
    });
    await sql`select pg_notify(${GUARD_CHANNEL}, ${`alert:${alert.id}`})`.execute(scope.tx);
    this.logger.fatal({ alert: 'breach_guard', rule: a.rule, severity: a.severity, feature: a.feature, action: a.action, alertId: alert.id }, 'breach guard raised an alert');
    return alert.id;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }
}

function toWatched(r: {
  seq: number;
  occurred_at: Date;
  actor_kind: string;
  actor_id: string | null;
  action: string;
  object_type: string | null;
  object_id: string | null;
  patient_id: string | null;
  outcome: 'success' | 'denied' | 'failure';
  details: string | null;
}): WatchedEvent {
  let details: Record<string, unknown> | null = null;
  if (r.details) {
    try {
      const parsed: unknown = JSON.parse(r.details);
      if (parsed && typeof parsed === 'object') details = parsed as Record<string, unknown>;
    } catch {
      details = null;
    }
  }
  return {
    seq: Number(r.seq),
    occurredAt: r.occurred_at,
    actorKind: r.actor_kind,
    actorId: r.actor_id,
    action: r.action,
    objectType: r.object_type,
    objectId: r.object_id,
    patientId: r.patient_id,
    outcome: r.outcome,
    details,
  };
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

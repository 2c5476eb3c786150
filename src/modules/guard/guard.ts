import { sql, type Database } from '../../db';
import type { Scopes } from '../../access/scope';
import { noRequest } from '../../access/request-context';
import type { Alert } from '../../contracts/guard';
import { getAlert, toAlert } from './alerts';
import { Detector, GUARD_CHANNEL, GUARD_WAKE_CHANNEL, type GuardSettings } from './detector';

interface GuardLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  fatal(obj: object, msg: string): void;
}

const WEBHOOK_TIMEOUT_MS = 5_000;
const WEBHOOK_SWEEP_MS = 30_000;
const WEBHOOK_MAX_ATTEMPTS = 10;

/**
 * The breach guard as one process sees it: its detector, the throttled principals (refused with
 * 429 everywhere), and new alerts pushed to the DPO's open pages. Throttles and alerts are
 * re-read on NOTIFY and after any reconnect, like the kill switches.
 */
export class Guard {
  readonly detector: Detector;
  private throttles = new Map<string, number>();
  private readonly listeners = new Set<(alert: Alert | null) => void>();
  /** Open streams, ended when the service shuts down (an open response would hold the server's close). */
  private readonly closers = new Set<() => void>();
  private readonly unlisten: (() => Promise<void>)[] = [];
  private sweep: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly scopes: Scopes,
    settings: GuardSettings,
    private readonly webhookUrl: string | undefined,
    private readonly logger: GuardLogger,
  ) {
    this.detector = new Detector(scopes, settings, logger, (id) => void this.deliver(id));
  }

  /** Subscribes, reads the throttles and starts detecting; a failed start leaves nothing subscribed (start-up retries it). */
  async start(): Promise<void> {
    try {
      await this.subscribe();
      await this.refreshThrottles(false);
    } catch (err) {
      for (const u of this.unlisten.splice(0)) await u().catch(() => undefined);
      throw err;
    }
    this.detector.start();
    if (this.webhookUrl) {
      this.sweep = setInterval(() => void this.retryWebhooks(), WEBHOOK_SWEEP_MS);
      this.sweep.unref();
    }
  }

  private async subscribe(): Promise<void> {
    this.unlisten.push(
      await this.db.listen(
        GUARD_CHANNEL,
        (payload) => {
          if (payload.startsWith('alert:')) void this.announce(payload.slice('alert:'.length));
          else void this.refreshThrottles();
        },
        // Missed while disconnected: throttles are re-read, and open pages are told to re-read their alerts.
        () => {
          void this.refreshThrottles();
          for (const l of this.listeners) l(null);
        },
      ),
    );
    this.unlisten.push(
      await this.db.listen(
        GUARD_WAKE_CHANNEL,
        () => this.detector.wake(),
        () => this.detector.wake(),
      ),
    );
  }

  /** Refused everywhere until the throttle ends (the probing rule). From memory: no round trip. */
  isThrottled(accountId: string): boolean {
    const until = this.throttles.get(accountId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.throttles.delete(accountId);
    return false;
  }

  /**
   * New alerts, as they are raised in any process (the DPO's live page); `null` when some may
   * have been missed (the notification connection was replaced): re-read the list.
   */
  onAlert(listener: (alert: Alert | null) => void, onClose?: () => void): () => void {
    if (this.closed) {
      onClose?.();
      return () => undefined;
    }
    this.listeners.add(listener);
    if (onClose) this.closers.add(onClose);
    return () => {
      this.listeners.delete(listener);
      if (onClose) this.closers.delete(onClose);
    };
  }

  /** `retry`: keep trying in the background (a notification); at start-up the failure is the caller's. */
  private async refreshThrottles(retry = true): Promise<void> {
    try {
      const rows = await this.scopes.run(
        { kind: 'system', reason: 'breach guard: read throttles' },
        noRequest('guard'),
        (scope) => scope.tx.selectFrom('guard_throttles').select(['actor_id', 'until']).where('until', '>', new Date()).execute(),
        { readOnly: true },
      );
      this.throttles = new Map(rows.map((r) => [r.actor_id, r.until.getTime()]));
    } catch (err) {
      if (!retry) throw err;
      this.logger.warn({ errName: (err as Error).name }, 'could not re-read the throttled principals; retrying');
      if (!this.closed) setTimeout(() => void this.refreshThrottles(), 1_000).unref();
    }
  }

  private async announce(id: string): Promise<void> {
    if (this.listeners.size === 0) return;
    try {
      const alert = await this.scopes.run(
        { kind: 'system', reason: 'breach guard: announce an alert' },
        noRequest('guard'),
        (scope) => getAlert(scope, id),
        { readOnly: true },
      );
      if (alert) for (const l of this.listeners) l(alert);
    } catch (err) {
      this.logger.warn({ errName: (err as Error).name, alertId: id }, 'could not read a new alert to push it to open pages');
    }
  }

  /**
   * The optional paging webhook: the alert's identifiers and codes, never patient data. Delivered
   * at least once (the POST runs outside any transaction, so a retry sweep in another process may
   * page again: the payload's id lets a pager drop the repeat).
   */
  private async deliver(id: string): Promise<void> {
    if (!this.webhookUrl || this.closed) return;
    const request = noRequest('guard');
    try {
      const row = await this.scopes.run(
        { kind: 'system', reason: 'breach guard: page by webhook' },
        request,
        (scope) => scope.tx.selectFrom('guard_alerts').selectAll().where('id', '=', id).where('webhook_sent_at', 'is', null).executeTakeFirst(),
        { readOnly: true },
      );
      if (!row) return;
      const alert = toAlert(row);
      let ok = false;
      let status: number | null = null;
      try {
        const res = await fetch(this.webhookUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            service: 'confidant',
            alert: { id: alert.id, raisedAt: alert.raisedAt, rule: alert.rule, severity: alert.severity, feature: alert.feature, action: alert.action, summary: alert.summary, eventCount: alert.eventCount, incidentId: alert.incidentId },
          }),
          signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
        });
        status = res.status;
        ok = res.ok;
        await res.body?.cancel();
      } catch {
        ok = false;
      }
      await this.scopes.system('breach guard: page by webhook', request, async (scope) => {
        const attempts = row.webhook_attempts + 1;
        await scope.tx
          .updateTable('guard_alerts')
          .set({ webhook_attempts: sql<number>`webhook_attempts + 1`, ...(ok || attempts >= WEBHOOK_MAX_ATTEMPTS ? { webhook_sent_at: sql<Date>`now()` } : {}) })
          .where('id', '=', id)
          .where('webhook_sent_at', 'is', null)
          .execute();
        scope.audit({ action: 'guard.webhook', objectType: 'guard_alert', objectId: id, outcome: ok ? 'success' : 'failure', details: { attempt: attempts, status } });
      });
      if (!ok) this.logger.warn({ alertId: id, status }, 'the paging webhook did not accept an alert; it will be retried');
    } catch (err) {
      this.logger.warn({ errName: (err as Error).name, alertId: id }, 'could not page by webhook; it will be retried');
    }
  }

  private async retryWebhooks(): Promise<void> {
    try {
      const pending = await this.scopes.run(
        { kind: 'system', reason: 'breach guard: webhooks to retry' },
        noRequest('guard'),
        (scope) =>
          scope.tx
            .selectFrom('guard_alerts')
            .select('id')
            .where('webhook_sent_at', 'is', null)
            .where('raised_at', '>', new Date(Date.now() - 86_400_000))
            .orderBy('raised_at')
            .limit(20)
            .execute(),
        { readOnly: true },
      );
      for (const p of pending) await this.deliver(p.id);
    } catch (err) {
      this.logger.warn({ errName: (err as Error).name }, 'could not look for webhooks to retry');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    await this.detector.stop();
    for (const u of this.unlisten) await u().catch(() => undefined);
    for (const c of [...this.closers]) c();
    this.closers.clear();
    this.listeners.clear();
  }
}

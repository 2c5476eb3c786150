import { createContext, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import * as api from './api';
import type { GuardAlert } from './api-types';
import { featureLabel } from './features';

/** After the browser gave up on the stream (an answer that was not a stream), try again this much later. */
const RETRY_MS = 5_000;

/** The live stream: connecting, open, lost and reconnecting by itself, or given up on for a while. */
export type AlertStreamState = 'connecting' | 'live' | 'reconnecting' | 'unavailable';

interface GuardAlertsValue {
  /** Unacknowledged first, then newest; null until the first list has arrived. */
  alerts: GuardAlert[] | null;
  loadError: string | null;
  stream: AlertStreamState;
  /** The last alert the stream brought (new or changed), for announcing it. */
  lastPushed: GuardAlert | null;
  /** How many alerts the stream has brought: what depends on them (the features) re-reads when it moves. */
  pushes: number;
  acknowledge(alertId: string): Promise<void>;
  reload(): void;
}

const GuardAlertsContext = createContext<GuardAlertsValue | null>(null);

/** As the server lists them: those waiting to be acknowledged first, then newest first. */
const byUrgency = (a: GuardAlert, b: GuardAlert) =>
  Number(a.acknowledgedAt !== null) - Number(b.acknowledgedAt !== null) || b.raisedAt.localeCompare(a.raisedAt);

function parseAlert(data: unknown): GuardAlert | null {
  if (typeof data !== 'string') return null;
  try {
    const alert = JSON.parse(data) as GuardAlert;
    return typeof alert === 'object' && alert !== null && typeof alert.id === 'string' ? alert : null;
  } catch {
    return null;
  }
}

/**
 * The DPO's alerts, pushed by the server (Server-Sent Events) rather than polled: the list is
 * fetched each time the stream (re)opens, so an alert raised while it was down is not missed, and
 * every alert the stream brings replaces its earlier copy. Idle unless `enabled` (a signed-in DPO).
 */
export function GuardAlertsProvider({ enabled, children }: { enabled: boolean; children: ReactNode }) {
  const [alerts, setAlerts] = useState<ReadonlyMap<string, GuardAlert> | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [stream, setStream] = useState<AlertStreamState>('connecting');
  const [lastPushed, setLastPushed] = useState<GuardAlert | null>(null);
  const [pushes, setPushes] = useState(0);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    if (!enabled) {
      setAlerts(null);
      setLoadError(null);
      setLastPushed(null);
      return;
    }
    let closed = false;
    let source: EventSource | null = null;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let generation = 0;
    // What the stream brought while a list was on its way: newer than that list.
    let pushedSinceList = new Map<string, GuardAlert>();

    const load = async () => {
      const mine = ++generation;
      pushedSinceList = new Map();
      try {
        const list = await api.listGuardAlerts();
        if (closed || mine !== generation) return;
        const next = new Map(list.alerts.map((a) => [a.id, a]));
        for (const [id, a] of pushedSinceList) next.set(id, a);
        setAlerts(next);
        setLoadError(null);
      } catch (error) {
        if (!closed && mine === generation) setLoadError(api.errorMessage(error));
      }
    };

    const connect = () => {
      setStream('connecting');
      const es = new EventSource(api.guardAlertStreamUrl);
      source = es;
      es.addEventListener('open', () => {
        setStream('live');
        void load();
      });
      es.addEventListener('alert', (event) => {
        const alert = parseAlert((event as MessageEvent).data);
        if (!alert) return;
        pushedSinceList.set(alert.id, alert);
        setAlerts((previous) => new Map(previous ?? []).set(alert.id, alert));
        setLastPushed(alert);
        setPushes((n) => n + 1);
      });
      // The server's own notifications were interrupted: alerts may have been missed, so re-read.
      es.addEventListener('resync', () => void load());
      es.addEventListener('error', () => {
        if (closed) return;
        if (es.readyState === EventSource.CLOSED) {
          // The browser will not reconnect by itself (the answer was not a stream): we do, later.
          es.close();
          setStream('unavailable');
          retry = setTimeout(connect, RETRY_MS);
          void load();
        } else {
          setStream('reconnecting');
        }
      });
    };

    void load();
    connect();
    return () => {
      closed = true;
      source?.close();
      clearTimeout(retry);
    };
  }, [enabled, version]);

  const acknowledge = useCallback(async (alertId: string) => {
    const alert = await api.acknowledgeGuardAlert(alertId);
    setAlerts((previous) => new Map(previous ?? []).set(alert.id, alert));
  }, []);

  const reload = useCallback(() => setVersion((v) => v + 1), []);

  const value = useMemo<GuardAlertsValue>(
    () => ({
      alerts: alerts ? [...alerts.values()].sort(byUrgency) : null,
      loadError,
      stream,
      lastPushed,
      pushes,
      acknowledge,
      reload,
    }),
    [alerts, loadError, stream, lastPushed, pushes, acknowledge, reload],
  );
  return <GuardAlertsContext.Provider value={value}>{children}</GuardAlertsContext.Provider>;
}

export function useGuardAlerts(): GuardAlertsValue {
  const value = useContext(GuardAlertsContext);
  if (!value) throw new Error('useGuardAlerts must be used inside <GuardAlertsProvider>');
  return value;
}

/** Critical alerts nobody has acknowledged yet, newest first. */
export function unacknowledgedCritical(alerts: GuardAlert[] | null): GuardAlert[] {
  return (alerts ?? []).filter((a) => a.severity === 'critical' && a.acknowledgedAt === null);
}

/** What happened, in a few words for the banner: "replay playback was switched off automatically". */
export function alertHeadline(alert: GuardAlert): string {
  if (alert.action === 'feature_disabled' && alert.feature) return `${featureLabel(alert.feature)} was switched off automatically`;
  return alert.summary.replace(/\.$/, '');
}

export const SEVERITY_LABELS: Record<GuardAlert['severity'], string> = { critical: 'Critical', high: 'High', medium: 'Medium' };

export const RULE_LABELS: Record<GuardAlert['rule'], string> = {
  containment: 'Containment',
  integrity: 'Integrity',
  probing: 'Probing',
  volume: 'Unusual volume',
};

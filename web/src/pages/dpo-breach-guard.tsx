import { useEffect, useId, useState } from 'react';
import { Link } from 'react-router';
import { errorMessage, getLastDrill, listFeatures } from '../api';
import type { DrillReport, Feature, GuardAlert } from '../api-types';
import { canSwitchOn, useFeatureSwitch } from '../components/feature-switch';
import { LoadedContent, Loading } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { featureTitle } from '../features';
import { describeChanger } from '../format';
import { RULE_LABELS, SEVERITY_LABELS, useGuardAlerts } from '../guard-alerts';
import type { AlertStreamState } from '../guard-alerts';
import { useSignedIn } from '../session';
import { useApi } from '../use-api';
import { FeatureState } from './features';

/** How many of an alert's audit events are offered as links; the rest are counted. */
const SHOWN_SEQS = 12;

const SEVERITY_TONE: Record<GuardAlert['severity'], string> = { critical: 'red', high: 'amber', medium: 'blue' };

const STREAM_LINE: Record<AlertStreamState, string> = {
  connecting: 'Connecting to live alerts…',
  live: 'Live: new alerts appear here as soon as they are raised.',
  reconnecting: 'Live alerts interrupted. Reconnecting…',
  unavailable: 'Live alerts are not available just now; trying again shortly. The list below may be out of date.',
};

function AlertItem({ alert, onShowEvent }: { alert: GuardAlert; onShowEvent: (seq: number) => void }) {
  const { acknowledge } = useGuardAlerts();
  const session = useSignedIn();
  const headingId = useId();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const done = alert.acknowledgedAt !== null;
  const shown = alert.eventSeqs.slice(0, SHOWN_SEQS);
  const more = alert.eventCount - shown.length;

  async function ack() {
    setBusy(true);
    setError(null);
    try {
      await acknowledge(alert.id);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <li
      className={`guard-alert guard-alert--${alert.severity}${done ? ' guard-alert--done' : ''}`}
      aria-labelledby={headingId}
      data-alert-id={alert.id}
    >
      <h3 id={headingId} className="guard-alert__title">
        <span className={`tag tag--${SEVERITY_TONE[alert.severity]}`}>{SEVERITY_LABELS[alert.severity]}</span>{' '}
        {RULE_LABELS[alert.rule]} rule{alert.feature ? `: ${featureTitle(alert.feature)}` : ''}
      </h3>
      <p className="guard-alert__summary">{alert.summary}</p>
      <dl className="guard-alert__details">
        <div>
          <dt>Raised</dt>
          <dd>
            <LocalTime iso={alert.raisedAt} />
          </dd>
        </div>
        <div>
          <dt>Feature</dt>
          <dd>
            {alert.feature ? featureTitle(alert.feature) : <span className="muted">–</span>}
            {alert.action === 'feature_disabled' ? <span className="muted"> (switched off automatically)</span> : null}
            {alert.action === 'throttled' ? <span className="muted"> (the person was slowed down)</span> : null}
          </dd>
        </div>
        <div>
          <dt>Audit events</dt>
          <dd>
            <ul className="seq-list" aria-label="Audit events that raised it">
              {shown.map((seq) => (
                <li key={seq}>
                  <button
                    type="button"
                    className="link-button"
                    aria-label={`Show event ${seq} in the audit trail`}
                    onClick={() => onShowEvent(seq)}
                  >
                    {seq}
                  </button>
                </li>
              ))}
            </ul>
            {more > 0 ? <span className="muted"> and {more} more</span> : null}
          </dd>
        </div>
        {alert.actorId ? (
          <div>
            <dt>Actor</dt>
            <dd>
              <code className="id">{alert.actorId}</code>
            </dd>
          </div>
        ) : null}
        {alert.incidentId ? (
          <div>
            <dt>Incident</dt>
            <dd>
              <code className="id">{alert.incidentId}</code>
            </dd>
          </div>
        ) : null}
      </dl>
      {done ? (
        <p className="muted guard-alert__acknowledged">
          Acknowledged <LocalTime iso={alert.acknowledgedAt ?? ''} />
          {alert.acknowledgedBy ? ` by ${describeChanger(alert.acknowledgedBy, session.account.id)}` : ''}.
        </p>
      ) : (
        <button type="button" className="button button--small" disabled={busy} aria-describedby={headingId} onClick={() => void ack()}>
          Acknowledge
        </button>
      )}
      {error ? (
        <p className="field__error" role="alert">
          {error}
        </p>
      ) : null}
    </li>
  );
}

/** The breach guard's alerts, pushed as they are raised; each names its audit events. */
export function AlertsSection({ onShowEvent }: { onShowEvent: (seq: number) => void }) {
  const { alerts, loadError, stream, lastPushed, reload } = useGuardAlerts();
  const waiting = (alerts ?? []).filter((a) => a.acknowledgedAt === null).length;
  return (
    <section className="guard-alerts" aria-labelledby="alerts">
      <h2 id="alerts" tabIndex={-1}>
        Alerts
      </h2>
      <p className="muted" role="status">
        {STREAM_LINE[stream]}
      </p>
      {/* Announced once each, as the stream brings them. */}
      <p className="visually-hidden" aria-live="polite">
        {lastPushed ? `${SEVERITY_LABELS[lastPushed.severity]} alert: ${lastPushed.summary}` : ''}
      </p>
      {loadError ? (
        <div className="notice notice--error" role="alert">
          <p>{loadError}</p>
          <button type="button" className="button button--secondary" onClick={reload}>
            Try again
          </button>
        </div>
      ) : null}
      {alerts === null ? (
        loadError ? null : <Loading label="Loading alerts…" />
      ) : alerts.length === 0 ? (
        <p className="empty-state card">No alerts. The detection rules have seen nothing wrong.</p>
      ) : (
        <>
          <p>
            {alerts.length} alert{alerts.length === 1 ? '' : 's'}
            {waiting > 0 ? `, ${waiting} not yet acknowledged (listed first)` : ', all acknowledged'}. Newest first.
          </p>
          <ul className="guard-alert-list">
            {alerts.map((a) => (
              <AlertItem key={a.id} alert={a} onShowEvent={onShowEvent} />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function OffFeature({ feature, onSwitch }: { feature: Feature; onSwitch: (f: Feature) => void }) {
  const session = useSignedIn();
  const title = featureTitle(feature.name);
  return (
    <li className="off-feature" data-feature={feature.name}>
      <p>
        <strong>{title}</strong> <FeatureState feature={feature} />
      </p>
      <p className="muted">
        Switched off <LocalTime iso={feature.changedAt} /> by {describeChanger(feature.changedBy, session.account.id)}.
      </p>
      <p className="break">Reason: {feature.reason}</p>
      {canSwitchOn(feature, true) ? (
        <button type="button" className="button button--small" aria-label={`Switch back on: ${title}`} onClick={() => onSwitch(feature)}>
          Switch back on
        </button>
      ) : null}
    </li>
  );
}

/** What is switched off now, with a quick way back on; the full list is on the Features page. */
export function OffFeaturesSection() {
  const { pushes } = useGuardAlerts();
  const { result, reload } = useApi(listFeatures, [pushes]);
  const [message, setMessage] = useState('');
  const switcher = useFeatureSwitch((changed) => {
    setMessage(`${featureTitle(changed.name)} is ${changed.enabled ? 'back on' : 'now off'}.`);
    reload();
  });
  return (
    <section aria-labelledby="off-features-heading">
      <h2 id="off-features-heading">Features switched off</h2>
      <p role="status" className="status-line">
        {message}
      </p>
      <LoadedContent result={result} what="features" onRetry={reload}>
        {({ features }) => {
          const off = features.filter((f) => !f.enabled);
          return off.length === 0 ? (
            <p className="empty-state card">All features are on.</p>
          ) : (
            <ul className="off-feature-list card">
              {off.map((f) => (
                <OffFeature key={f.name} feature={f} onSwitch={switcher.ask} />
              ))}
            </ul>
          );
        }}
      </LoadedContent>
      <p>
        <Link to="/dpo/features">All features and their switches</Link>
      </p>
      {switcher.dialog}
    </section>
  );
}

const ms = (value: number | null) => (value === null ? <span className="muted">–</span> : `${Math.round(value).toLocaleString()} ms`);
const yesNo = (value: boolean) => (value ? 'Yes' : 'No');

function PassTag({ passed }: { passed: boolean }) {
  return passed ? <span className="tag tag--green">Passed</span> : <span className="tag tag--red">Failed</span>;
}

function DrillTable({ report }: { report: DrillReport }) {
  return (
    <>
      <p>
        Last run <LocalTime iso={report.ranAt} /> on {report.database}, {report.processes} process
        {report.processes === 1 ? '' : 'es'}: <PassTag passed={report.passed} />
      </p>
      <div className="table-scroll" role="region" aria-label="Breach drill cases" tabIndex={0}>
        <table className="table table--compact table--cards drill">
          <caption className="visually-hidden">Breach drill cases and what happened to each</caption>
          <thead>
            <tr>
              <th scope="col">Case</th>
              <th scope="col" className="numeric">
                Foreign bytes
              </th>
              <th scope="col" className="numeric">
                Foreign rows
              </th>
              <th scope="col">Stopped by</th>
              <th scope="col">Detected</th>
              <th scope="col" className="numeric">
                Contained
              </th>
              <th scope="col" className="numeric">
                Alert
              </th>
              <th scope="col">Result</th>
            </tr>
          </thead>
          <tbody>
            {report.cases.map((c) => (
              <tr key={c.name}>
                <th scope="row">
                  {c.name}
                  <br />
                  <span className="muted drill__description">{c.description}</span>
                  {c.note ? (
                    <>
                      <br />
                      <span className="muted drill__description">{c.note}</span>
                    </>
                  ) : null}
                </th>
                <td className="numeric" data-label="Foreign bytes">
                  {c.foreignBytes.toLocaleString()}
                </td>
                <td className="numeric" data-label="Foreign rows">
                  {c.foreignRows.toLocaleString()}
                </td>
                <td data-label="Stopped by">{c.stoppedBy}</td>
                <td data-label="Detected">{yesNo(c.detected)}</td>
                <td className="numeric" data-label="Contained">
                  {ms(c.containedMs)}
                </td>
                <td className="numeric" data-label="Alert">
                  {ms(c.alertMs)}
                </td>
                <td data-label="Result">
                  <PassTag passed={c.passed} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

/** The breach drill's last report: each fault it injected, what stopped it and how fast it was contained. */
export function DrillSection() {
  const { result, reload } = useApi(getLastDrill);
  return (
    <section aria-labelledby="drill-heading">
      <h2 id="drill-heading">Breach drill</h2>
      <p>
        The drill plants access-control faults in a test run of the service and checks that no patient receives another
        patient's data, that each fault is detected, and how fast the feature it touches is switched off.
      </p>
      <LoadedContent result={result} what="the last drill" onRetry={reload}>
        {({ report }) =>
          report ? (
            <DrillTable report={report} />
          ) : (
            <p className="empty-state card">
              No drill has been run yet. An operator runs it with <code>npm run drill</code>.
            </p>
          )
        }
      </LoadedContent>
    </section>
  );
}

/** Scrolls to and focuses the element with `id` once it is on the page (the next frame). */
export function useFocusOn(id: string, when: unknown) {
  useEffect(() => {
    if (when === null || when === undefined) return;
    const frame = requestAnimationFrame(() => {
      const el = document.getElementById(id);
      el?.focus();
      el?.scrollIntoView({ block: 'start' });
    });
    return () => cancelAnimationFrame(frame);
  }, [id, when]);
}

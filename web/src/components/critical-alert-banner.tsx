import { Link } from 'react-router';
import { alertHeadline, unacknowledgedCritical, useGuardAlerts } from '../guard-alerts';

/** On every page the DPO visits while a critical alert waits to be acknowledged: what, and where to look. */
export function CriticalAlertBanner() {
  const { alerts } = useGuardAlerts();
  const waiting = unacknowledgedCritical(alerts);
  const first = waiting[0];
  // Always in the page, so that an alert arriving later is announced.
  return (
    <div role="alert" className={first ? 'alert-banner' : undefined}>
      {first ? (
        <p>
          <strong>
            {waiting.length} critical alert{waiting.length === 1 ? '' : 's'}:
          </strong>{' '}
          {alertHeadline(first)}
          {waiting.length > 1 ? `, and ${waiting.length - 1} more` : ''}.{' '}
          <Link to="/dpo#alerts" className="alert-banner__link">
            Review<span className="visually-hidden"> the alerts</span>
          </Link>
        </p>
      ) : null}
    </div>
  );
}

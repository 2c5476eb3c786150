import { useEffect, useRef } from 'react';
import { Link } from 'react-router';
import { getProfile, listMyAppointments, listNotifications, markNotificationRead } from '../api';
import type { AppNotification } from '../api-types';
import { FeatureOffNotice } from '../components/feature-off';
import { LoadedContent } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { usePageTitle } from '../components/page-title';
import { formatWhen, modeLabel } from '../format';
import { useFeatureOn } from '../feature-status';
import { useApi } from '../use-api';

function NextAppointment() {
  const { result, reload } = useApi(listMyAppointments);
  const booking = useFeatureOn('booking');
  return (
    <section className="card" aria-labelledby="appointments-heading">
      <h2 id="appointments-heading">Appointments</h2>
      <LoadedContent result={result} what="your appointments" onRetry={reload}>
        {({ upcoming }) => {
          const next = upcoming[0];
          return (
            <>
              {next ? (
                <div className="next-appointment">
                  <p className="next-appointment__label">Your next consultation</p>
                  <p className="next-appointment__when">
                    <time dateTime={next.startsAt}>{formatWhen(next.startsAt)}</time>
                  </p>
                  <p>
                    {modeLabel(next.mode)} with {next.clinician.displayName}
                  </p>
                  {upcoming.length > 1 ? (
                    <p className="muted">
                      You have {upcoming.length} upcoming consultations.
                    </p>
                  ) : null}
                </div>
              ) : (
                <p className="empty-state">You have no upcoming appointments.</p>
              )}
              {booking ? null : <FeatureOffNotice feature="booking" compact />}
              <ul className="link-list">
                {booking ? (
                  <li>
                    <Link to="/patient/book">Book a consultation</Link>
                  </li>
                ) : null}
                <li>
                  <Link to="/patient/appointments">All your appointments</Link>
                </li>
              </ul>
            </>
          );
        }}
      </LoadedContent>
    </section>
  );
}

const SHOWN_NOTIFICATIONS = 5;

function notificationText(n: AppNotification): string {
  const when = n.appointmentStartsAt ? formatWhen(n.appointmentStartsAt) : null;
  switch (n.kind) {
    case 'appointment_booked':
      return when ? `Consultation booked for ${when}.` : 'Consultation booked.';
    case 'appointment_cancelled':
      return when ? `Consultation on ${when} cancelled.` : 'Consultation cancelled.';
    case 'appointment_rescheduled':
      return when ? `Consultation moved to ${when}.` : 'Consultation moved.';
  }
}

function NotificationList({ notifications }: { notifications: AppNotification[] }) {
  // Unread first, newest first within each.
  const shown = [...notifications]
    .sort((a, b) => Number(a.read) - Number(b.read) || b.createdAt.localeCompare(a.createdAt))
    .slice(0, SHOWN_NOTIFICATIONS);
  const marked = useRef(new Set<string>());

  // Seen is read: mark what is on screen now. The "New" tags stay until the next visit.
  useEffect(() => {
    for (const n of shown) {
      if (n.read || marked.current.has(n.id)) continue;
      marked.current.add(n.id);
      markNotificationRead(n.id).catch(() => marked.current.delete(n.id));
    }
  });

  if (shown.length === 0) return <p className="empty-state">No notifications.</p>;
  const unread = notifications.filter((n) => !n.read).length;
  return (
    <>
      <p className="muted">{unread === 0 ? 'Nothing new.' : `${unread} new.`}</p>
      <ul className="notification-list">
        {shown.map((n) => (
          <li key={n.id} className={n.read ? 'notification' : 'notification notification--unread'}>
            {n.read ? null : <span className="tag tag--blue">New</span>}{' '}
            {n.appointmentId ? <Link to="/patient/appointments">{notificationText(n)}</Link> : notificationText(n)}
            <br />
            <span className="muted notification__sent">
              Sent <LocalTime iso={n.createdAt} />
            </span>
          </li>
        ))}
      </ul>
    </>
  );
}

function Notifications() {
  const { result, reload } = useApi(listNotifications);
  return (
    <section className="card" aria-labelledby="notifications-heading">
      <h2 id="notifications-heading">Notifications</h2>
      <LoadedContent result={result} what="notifications" onRetry={reload}>
        {({ notifications }) => <NotificationList notifications={notifications} />}
      </LoadedContent>
    </section>
  );
}

export function PatientHomePage() {
  usePageTitle('Home');
  const { result, reload } = useApi(getProfile);
  const replays = useFeatureOn('replay_list');

  return (
    <LoadedContent result={result} what="your details" onRetry={reload}>
      {(profile) => (
        <>
          <h1>Hello, {profile.givenName}</h1>
          <div className="cards">
            <NextAppointment />
            <Notifications />
            <section className="card" aria-labelledby="replays-heading">
              <h2 id="replays-heading">Consultation replays</h2>
              <p>Listen to or watch consultations you agreed to have recorded, and read your GP's notes.</p>
              {replays ? (
                <ul className="link-list">
                  <li>
                    <Link to="/patient/replays">Consultation replays</Link>
                  </li>
                </ul>
              ) : (
                <FeatureOffNotice feature="replay_list" compact />
              )}
            </section>
            <section className="card" aria-labelledby="account-heading">
              <h2 id="account-heading">Your account</h2>
              <ul className="link-list">
                <li>
                  <Link to="/patient/profile">Your profile</Link>
                  <span className="muted"> – your name, date of birth and NHS number</span>
                </li>
                <li>
                  <Link to="/account/security">Account security</Link>
                  <span className="muted"> – password, two-step verification and signed-in devices</span>
                </li>
              </ul>
            </section>
          </div>
        </>
      )}
    </LoadedContent>
  );
}

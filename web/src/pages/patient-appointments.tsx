import { useEffect, useId, useMemo, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import { Link, useLocation, useNavigate } from 'react-router';
import {
  ApiError,
  cancelAppointment,
  errorMessage,
  joinConsultation,
  listMyAppointments,
  rescheduleAppointment,
} from '../api';
import type { Appointment, Slot } from '../api-types';
import { StatusTag, statusLabel } from '../components/appointment-status';
import { ConfirmDialog } from '../components/confirm-dialog';
import { FeatureOffNotice } from '../components/feature-off';
import { LoadedContent, Loading } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { SlotPicker, groupSlotsByDay, slotKey } from '../components/slot-picker';
import { formatTimeOfDay, formatWhen, modeLabel } from '../format';
import { useFeatureOn } from '../feature-status';
import { useApi } from '../use-api';
import { useSignedIn } from '../session';
import { useClock } from '../use-clock';
import { SLOT_GONE, zoneHint } from './patient-book';
import { useFreeSlots } from '../use-free-slots';

type Notice = { tone: 'success' | 'info'; text: string };

/** The page-level notices that greyed buttons point to (aria-describedby). */
const JOIN_OFF_ID = 'consultation-join-off';
const RESCHEDULE_OFF_ID = 'rescheduling-off';

/** Joins the appointment's consultation and opens the call page; explains when it is not open. */
function JoinConsultation({ appointment, describedBy }: { appointment: Appointment; describedBy: string }) {
  const navigate = useNavigate();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const joinOn = useFeatureOn('consultation_join');

  async function join() {
    setBusy(true);
    setError(null);
    try {
      const consultation = await joinConsultation(appointment.id);
      navigate(`/consultations/${consultation.id}`);
    } catch (e) {
      const opensAt = e instanceof ApiError ? e.details.opensAt : undefined;
      setError(
        typeof opensAt === 'string' ? `${errorMessage(e)} It opens at ${formatTimeOfDay(opensAt)}.` : errorMessage(e),
      );
      setBusy(false);
    }
  }

  return (
    <div className="join">
      <button
        type="button"
        className="button"
        aria-describedby={joinOn ? describedBy : `${describedBy} ${JOIN_OFF_ID}`}
        disabled={busy || !joinOn}
        onClick={() => void join()}
      >
        Join consultation
      </button>
      {error ? (
        <p className="field__error" role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

function bookedNotice(state: unknown): Notice | null {
  if (typeof state !== 'object' || state === null || !('booked' in state)) return null;
  const a = state.booked as Appointment;
  return {
    tone: 'success',
    text: `Your ${modeLabel(a.mode).toLowerCase()} consultation with ${a.clinician.displayName} is booked for ${formatWhen(a.startsAt)}.`,
  };
}

function Details({ appointment }: { appointment: Appointment }) {
  return (
    <>
      <div>
        <dt>GP</dt>
        <dd>{appointment.clinician.displayName}</dd>
      </div>
      <div>
        <dt>Type</dt>
        <dd>{modeLabel(appointment.mode)}</dd>
      </div>
      <div>
        <dt>Reason</dt>
        <dd className="break">{appointment.reason}</dd>
      </div>
    </>
  );
}

function Reschedule({
  appointment,
  describedBy,
  onMoved,
  onClose,
}: {
  appointment: Appointment;
  describedBy: string;
  onMoved: (moved: Appointment) => void;
  onClose: () => void;
}) {
  const [version, setVersion] = useState(0);
  const [selected, setSelected] = useState<Slot | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const baseId = useId();
  const headingRef = useRef<HTMLHeadingElement>(null);
  const slots = useFreeSlots({ clinicianId: appointment.clinician.id }, [version]);
  const current = slots.result.status === 'ok' ? slots.result.data : null;
  const days = useMemo(() => (current ? groupSlotsByDay(current.slots) : []), [current?.slots]);

  useEffect(() => headingRef.current?.focus(), []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!selected) {
      setError('Choose a new time.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      onMoved(await rescheduleAppointment(appointment.id, { startsAt: selected.startsAt }));
    } catch (e) {
      const code = e instanceof ApiError ? e.code : '';
      if (SLOT_GONE.has(code)) {
        setSelected(null);
        setVersion((v) => v + 1);
        setError(`${errorMessage(e)} Your consultation is still at its current time. The list of free times has been refreshed.`);
      } else {
        setError(errorMessage(e));
      }
      setBusy(false);
    }
  }

  return (
    <section className="reschedule" aria-labelledby={`${baseId}-heading`}>
      <h4 id={`${baseId}-heading`} className="reschedule__heading" tabIndex={-1} ref={headingRef}>
        Choose a new time with {appointment.clinician.displayName}
      </h4>
      <p className="muted">Your current time is kept until the new one is confirmed.</p>
      <form onSubmit={submit} noValidate aria-describedby={describedBy}>
        {error ? (
          <div className="notice notice--error" role="alert">
            <p>{error}</p>
          </div>
        ) : null}
        <LoadedContent result={slots.result} what="free times" onRetry={slots.reload}>
          {(current) =>
            days.length === 0 ? (
              <p className="empty-state">This GP has no other free times in the coming days.</p>
            ) : (
              <SlotPicker
                id={`${baseId}-slot`}
                name={`reschedule-${appointment.id}`}
                legend="New time"
                hint={zoneHint(current.timeZone)}
                days={days}
                value={selected ? slotKey(selected) : null}
                onChange={setSelected}
                dayHeadingLevel={5}
                more={{ available: current.next !== null, loading: current.loadingMore, error: current.moreError, load: slots.loadMore }}
              />
            )
          }
        </LoadedContent>
        <div className="button-row">
          <button type="submit" className="button" disabled={busy || days.length === 0}>
            Move to this time
          </button>
          <button type="button" className="link-button" onClick={onClose} disabled={busy}>
            Keep the current time
          </button>
        </div>
      </form>
    </section>
  );
}

function UpcomingItem({
  appointment,
  onCancelled,
  onMoved,
}: {
  appointment: Appointment;
  onCancelled: (a: Appointment) => void;
  onMoved: (from: Appointment, to: Appointment) => void;
}) {
  const headingId = useId();
  const panelId = useId();
  const [rescheduling, setRescheduling] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const rescheduleButton = useRef<HTMLButtonElement>(null);
  const reschedulingOn = useFeatureOn('rescheduling');
  const now = useClock();
  // The waiting room opens this long before the appointment (the clinic's setting; the server has the last word).
  const joinEarlyMs = useSignedIn().consultationJoinEarlySeconds * 1000;
  const changeable = appointment.status === 'booked' && new Date(appointment.startsAt).getTime() > now;
  const joinable = appointment.status === 'booked' && now >= new Date(appointment.startsAt).getTime() - joinEarlyMs;
  const status = statusLabel(appointment, 'patient', { now });

  async function cancel() {
    setBusy(true);
    setError(null);
    try {
      const cancelled = await cancelAppointment(appointment.id);
      setConfirming(false);
      onCancelled(cancelled);
    } catch (e) {
      setError(errorMessage(e));
      setBusy(false);
    }
  }

  return (
    <li className="appointment">
      <h3 id={headingId} className="appointment__when">
        <time dateTime={appointment.startsAt}>{formatWhen(appointment.startsAt)}</time>
      </h3>
      <dl className="appointment__details">
        <Details appointment={appointment} />
        <div>
          <dt>Status</dt>
          <dd>
            <StatusTag {...status} />
          </dd>
        </div>
      </dl>
      {joinable ? (
        <JoinConsultation appointment={appointment} describedBy={headingId} />
      ) : appointment.status === 'booked' ? (
        <p className="muted appointment__join-opens">
          You can join from {formatTimeOfDay(new Date(new Date(appointment.startsAt).getTime() - joinEarlyMs).toISOString())}
          {joinEarlyMs > 0 ? `, ${Math.round(joinEarlyMs / 60_000)} minutes before the start` : ''}. The “Join consultation” button
          appears here then.
        </p>
      ) : null}
      {changeable ? (
        <div className="button-row">
          <button
            type="button"
            className="button button--secondary"
            aria-describedby={reschedulingOn ? headingId : `${headingId} ${RESCHEDULE_OFF_ID}`}
            aria-expanded={rescheduling && reschedulingOn}
            aria-controls={panelId}
            disabled={!reschedulingOn}
            ref={rescheduleButton}
            onClick={() => setRescheduling((r) => !r)}
          >
            Reschedule
          </button>
          <button
            type="button"
            className="button button--secondary button--danger"
            aria-describedby={headingId}
            onClick={() => {
              setError(null);
              setConfirming(true);
            }}
          >
            Cancel
          </button>
        </div>
      ) : null}
      <div id={panelId}>
        {rescheduling && reschedulingOn ? (
          <Reschedule
            appointment={appointment}
            describedBy={headingId}
            onMoved={(to) => onMoved(appointment, to)}
            onClose={() => {
              setRescheduling(false);
              rescheduleButton.current?.focus();
            }}
          />
        ) : null}
      </div>
      <ConfirmDialog
        open={confirming}
        title="Cancel this consultation?"
        confirmLabel="Yes, cancel it"
        cancelLabel="No, keep it"
        busy={busy}
        error={error}
        onConfirm={cancel}
        onClose={() => setConfirming(false)}
      >
        <p>
          {modeLabel(appointment.mode)} consultation with {appointment.clinician.displayName} on{' '}
          {formatWhen(appointment.startsAt)}. The time will be offered to other patients.
        </p>
      </ConfirmDialog>
    </li>
  );
}

function PastItem({ appointment, movedTo }: { appointment: Appointment; movedTo: Appointment | undefined }) {
  const status = statusLabel(appointment, 'patient', { moved: movedTo !== undefined });
  return (
    <li className="appointment appointment--past">
      <h3 className="appointment__when">
        <time dateTime={appointment.startsAt}>{formatWhen(appointment.startsAt)}</time>
      </h3>
      <dl className="appointment__details">
        <Details appointment={appointment} />
        <div>
          <dt>Status</dt>
          <dd>
            <StatusTag {...status} />
            {movedTo ? <span className="muted"> to {formatWhen(movedTo.startsAt)}</span> : null}
          </dd>
        </div>
      </dl>
      {appointment.consultationId ? (
        <p className="appointment__notes">
          <Link to={`/consultations/${appointment.consultationId}`}>
            Notes from {appointment.clinician.displayName}
            <span className="visually-hidden"> on {formatWhen(appointment.startsAt)}</span>
          </Link>
        </p>
      ) : null}
    </li>
  );
}

export function PatientAppointmentsPage() {
  usePageTitle('Your appointments');
  const location = useLocation();
  const navigate = useNavigate();
  const { result, reload, setData } = useApi(listMyAppointments);
  const now = useClock(60_000);
  const [notice, setNotice] = useState<Notice | null>(() => bookedNotice(location.state));
  const noticeRef = useRef<HTMLDivElement>(null);
  const [noticeVersion, setNoticeVersion] = useState(0);
  const bookingOn = useFeatureOn('booking');
  const reschedulingOn = useFeatureOn('rescheduling');
  const joinOn = useFeatureOn('consultation_join');

  // The confirmation is shown once; a reload or a later visit should not repeat it.
  useEffect(() => {
    if (bookedNotice(location.state)) navigate(location.pathname, { replace: true, state: null });
  }, [location, navigate]);

  useEffect(() => {
    if (noticeVersion > 0) noticeRef.current?.focus();
  }, [noticeVersion]);

  /** Shows a change at once (the server's answer), then reloads both lists to be sure. */
  function applied(change: { remove: Appointment; toPast: Appointment; toUpcoming?: Appointment }, next: Notice) {
    if (result.status === 'ok') {
      const upcoming = result.data.upcoming.filter((a) => a.id !== change.remove.id);
      if (change.toUpcoming) upcoming.push(change.toUpcoming);
      upcoming.sort((a, b) => a.startsAt.localeCompare(b.startsAt));
      const past = [change.toPast, ...result.data.past].sort((a, b) => b.startsAt.localeCompare(a.startsAt));
      setData({ ...result.data, upcoming, past });
    }
    setNotice(next);
    setNoticeVersion((v) => v + 1);
    reload();
  }

  return (
    <>
      <h1>Your appointments</h1>
      {notice ? (
        <div className={`notice notice--${notice.tone}`} role="status" tabIndex={-1} ref={noticeRef}>
          <p>{notice.text}</p>
        </div>
      ) : null}
      {bookingOn ? (
        <p>
          <Link className="button" to="/patient/book">
            Book a consultation
          </Link>
        </p>
      ) : (
        <FeatureOffNotice feature="booking" />
      )}
      {joinOn ? null : <FeatureOffNotice feature="consultation_join" id={JOIN_OFF_ID} />}
      {reschedulingOn ? null : <FeatureOffNotice feature="rescheduling" id={RESCHEDULE_OFF_ID} />}
      <LoadedContent result={result} what="your appointments" onRetry={reload}>
        {({ upcoming, past: notUpcoming }) => {
          const movedTo = new Map<string, Appointment>();
          for (const a of [...upcoming, ...notUpcoming]) if (a.rescheduledFrom) movedTo.set(a.rescheduledFrom, a);
          // Cancelled or moved bookings whose time is still ahead are not "past": they get a list of their own.
          const cancelledAhead = notUpcoming
            .filter((a) => a.status === 'cancelled' && Date.parse(a.startsAt) > now)
            .sort((a, b) => a.startsAt.localeCompare(b.startsAt));
          const past = notUpcoming.filter((a) => !cancelledAhead.includes(a));
          return (
            <>
              <section aria-labelledby="upcoming-heading">
                <h2 id="upcoming-heading">Upcoming</h2>
                {upcoming.length === 0 ? (
                  <p className="empty-state">You have no upcoming consultations.</p>
                ) : (
                  <ul className="appointment-list" aria-labelledby="upcoming-heading">
                    {upcoming.map((a) => (
                      <UpcomingItem
                        key={a.id}
                        appointment={a}
                        onCancelled={(c) =>
                          applied(
                            { remove: a, toPast: c },
                            { tone: 'info', text: `Your consultation on ${formatWhen(c.startsAt)} has been cancelled.` },
                          )
                        }
                        onMoved={(from, to) =>
                          applied(
                            { remove: from, toPast: { ...from, status: 'cancelled', cancelledBy: 'patient' }, toUpcoming: to },
                            {
                              tone: 'success',
                              text: `Your consultation with ${to.clinician.displayName} has been moved from ${formatWhen(from.startsAt)} to ${formatWhen(to.startsAt)}.`,
                            },
                          )
                        }
                      />
                    ))}
                  </ul>
                )}
              </section>
              {cancelledAhead.length > 0 ? (
                <section aria-labelledby="cancelled-heading">
                  <h2 id="cancelled-heading">Cancelled and moved</h2>
                  <ul className="appointment-list" aria-labelledby="cancelled-heading">
                    {cancelledAhead.map((a) => (
                      <PastItem key={a.id} appointment={a} movedTo={movedTo.get(a.id)} />
                    ))}
                  </ul>
                </section>
              ) : null}
              <section aria-labelledby="past-heading">
                <h2 id="past-heading">Past</h2>
                {past.length === 0 ? (
                  <p className="empty-state">No past consultations.</p>
                ) : (
                  <ul className="appointment-list" aria-labelledby="past-heading">
                    {past.map((a) => (
                      <PastItem key={a.id} appointment={a} movedTo={movedTo.get(a.id)} />
                    ))}
                  </ul>
                )}
              </section>
            </>
          );
        }}
      </LoadedContent>
    </>
  );
}

import { useEffect, useId, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import {
  cancelAppointment,
  errorMessage,
  getClinicianSchedule,
  getWaitingRoom,
  joinConsultation,
  recordAppointmentOutcome,
  startConsultation,
} from '../api';
import type { Appointment, ClinicianSchedule, ScheduledConsultation, WaitingRoomEntry } from '../api-types';
import { StatusTag, statusLabel } from '../components/appointment-status';
import { ConfirmDialog } from '../components/confirm-dialog';
import { FeatureOffNotice } from '../components/feature-off';
import { LoadedContent, Loading } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { TextField } from '../components/text-field';
import { addDaysTo, dateKeyOf, formatCalendarDate, formatLongDate, formatTimeOfDay, isDateKey, localTimeZone, modeLabel } from '../format';
import { useSignedIn } from '../session';
import { useFeatureOn } from '../feature-status';
import { useApi } from '../use-api';
import { useClock } from '../use-clock';

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`;

const WAITING_ROOM_POLL_MS = 5_000;
/** The notice greyed "Start" and "Open" buttons point to while consultations are switched off. */
const JOIN_OFF_ID = 'consultation-join-off';

const STATUS_WORDS: [ScheduledConsultation['status'], string][] = [
  ['booked', 'booked'],
  ['completed', 'completed'],
  ['no_show', 'no-show'],
  ['cancelled', 'cancelled'],
];

/** "2 consultations: 1 booked, 1 completed." — the counts add up to the rows below. */
export function daySummary(list: ScheduledConsultation[]): string {
  const parts = STATUS_WORDS.map(([status, word]) => [list.filter((c) => c.status === status).length, word] as const)
    .filter(([n]) => n > 0)
    .map(([n, word]) => `${n} ${word}`);
  return `${plural(list.length, 'consultation')}: ${parts.join(', ')}.`;
}

function WaitingRoomRow({ entry, onError }: { entry: WaitingRoomEntry; onError: (message: string) => void }) {
  const navigate = useNavigate();
  const rowId = useId();
  const [busy, setBusy] = useState(false);
  const joinOn = useFeatureOn('consultation_join');

  async function start() {
    setBusy(true);
    try {
      const c = entry.status === 'waiting' ? await startConsultation(entry.id) : null;
      navigate(`/consultations/${c?.id ?? entry.id}`);
    } catch (e) {
      onError(errorMessage(e));
      setBusy(false);
    }
  }

  return (
    <tr>
      <th scope="row" className="nowrap" id={`${rowId}-time`}>
        <time dateTime={entry.startsAt}>{formatTimeOfDay(entry.startsAt)}</time>
      </th>
      <td id={`${rowId}-patient`} data-label="Patient">
        {entry.patient.displayName}
      </td>
      <td className="nowrap" data-label="Type">
        {modeLabel(entry.mode)}
      </td>
      <td data-label="Status">
        {entry.patientPresent ? (
          <span className="tag tag--green">
            {entry.status === 'live' ? 'In the call' : 'Waiting'}
            {entry.patientJoinedAt && entry.status === 'waiting' ? ` since ${formatTimeOfDay(entry.patientJoinedAt)}` : ''}
          </span>
        ) : (
          <span className="tag tag--grey">Not connected</span>
        )}
        {entry.status === 'live' ? <span className="tag tag--blue waiting-room__live">Started</span> : null}
      </td>
      <td>
        <button
          type="button"
          className="button button--small"
          disabled={busy || !joinOn}
          aria-describedby={`${rowId}-patient ${rowId}-time${joinOn ? '' : ` ${JOIN_OFF_ID}`}`}
          onClick={() => void start()}
        >
          {entry.status === 'waiting' ? 'Start consultation' : 'Return to the call'}
        </button>
      </td>
    </tr>
  );
}

/** Today's consultations that someone has joined and that are not over, refreshed every few seconds. */
function WaitingRoom() {
  const { result, reload } = useApi(getWaitingRoom);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const timer = setInterval(reload, WAITING_ROOM_POLL_MS);
    return () => clearInterval(timer);
  }, [reload]);

  return (
    <section aria-labelledby="waiting-room-heading">
      <h2 id="waiting-room-heading">Waiting room</h2>
      {error ? (
        <p className="field__error" role="alert">
          {error}
        </p>
      ) : null}
      <LoadedContent result={result} what="the waiting room" onRetry={reload}>
        {({ consultations }) =>
          consultations.length === 0 ? (
            <p className="empty-state card">Nobody is waiting. Patients appear here when they join their consultation.</p>
          ) : (
            <div className="table-scroll" role="region" aria-label="Waiting room" tabIndex={0}>
              <table className="table table--cards waiting-room">
                <caption className="visually-hidden">Waiting room</caption>
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Patient</th>
                    <th scope="col">Type</th>
                    <th scope="col">Status</th>
                    <th scope="col">Action</th>
                  </tr>
                </thead>
                <tbody>
                  {consultations.map((entry) => (
                    <WaitingRoomRow key={entry.id} entry={entry} onError={setError} />
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </LoadedContent>
    </section>
  );
}

function ConsultationRow({
  consultation: c,
  now,
  onChanged,
}: {
  consultation: ScheduledConsultation;
  now: number;
  onChanged: (changed: Appointment, message: string) => void;
}) {
  const rowId = useId();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const navigate = useNavigate();
  const joinOn = useFeatureOn('consultation_join');
  const started = new Date(c.startsAt).getTime() <= now;
  // A consultation can be opened this long before it starts (the clinic's setting; the server has the last word).
  const openEarlyMs = useSignedIn().consultationJoinEarlySeconds * 1000;
  const openable = new Date(c.startsAt).getTime() - openEarlyMs <= now;
  const status = statusLabel(c, 'clinician', { now });
  const who = `${c.patientName} at ${formatTimeOfDay(c.startsAt)}`;

  async function open() {
    setBusy(true);
    setError(null);
    try {
      const consultation = await joinConsultation(c.id);
      navigate(`/consultations/${consultation.id}`);
    } catch (e) {
      setError(errorMessage(e));
      setBusy(false);
    }
  }

  async function run(action: () => Promise<Appointment>, message: string) {
    setBusy(true);
    setError(null);
    try {
      const changed = await action();
      setConfirming(false);
      onChanged(changed, message);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <tr>
      <th scope="row" className="nowrap" id={`${rowId}-time`}>
        <time dateTime={c.startsAt}>{formatTimeOfDay(c.startsAt)}</time>
      </th>
      <td id={`${rowId}-patient`} data-label="Patient">
        {c.patientName}
      </td>
      <td className="nowrap" data-label="Date of birth">
        {formatCalendarDate(c.dateOfBirth)}
      </td>
      <td className="nowrap" data-label="Type">
        {modeLabel(c.mode)}
      </td>
      <td className="break schedule__reason" data-label="Reason">
        {c.reason}
      </td>
      <td data-label="Status">
        <StatusTag {...status} />
      </td>
      <td>
        {c.status === 'booked' ? (
          <div className="table-actions">
            {openable ? (
              <button
                type="button"
                className="button button--small"
                disabled={busy || !joinOn}
                aria-describedby={`${rowId}-patient ${rowId}-time${joinOn ? '' : ` ${JOIN_OFF_ID}`}`}
                onClick={() => void open()}
              >
                Open consultation
              </button>
            ) : null}
            {started ? (
              <>
                <button
                  type="button"
                  className="button button--secondary button--small"
                  disabled={busy}
                  aria-describedby={`${rowId}-patient ${rowId}-time`}
                  onClick={() => run(() => recordAppointmentOutcome(c.id, 'completed'), `Marked completed: ${who}.`)}
                >
                  Mark completed
                </button>
                <button
                  type="button"
                  className="button button--secondary button--small"
                  disabled={busy}
                  aria-describedby={`${rowId}-patient ${rowId}-time`}
                  onClick={() => run(() => recordAppointmentOutcome(c.id, 'no_show'), `Marked as a no-show: ${who}.`)}
                >
                  Mark no-show
                </button>
              </>
            ) : (
              <button
                type="button"
                className="button button--secondary button--danger button--small"
                disabled={busy}
                aria-describedby={`${rowId}-patient ${rowId}-time`}
                onClick={() => {
                  setError(null);
                  setConfirming(true);
                }}
              >
                Cancel
              </button>
            )}
          </div>
        ) : c.consultationId ? (
          <Link className="button button--secondary button--small" to={`/consultations/${c.consultationId}`} aria-describedby={`${rowId}-patient ${rowId}-time`}>
            Notes
          </Link>
        ) : (
          <span className="muted">–</span>
        )}
        {error && !confirming ? (
          <p className="field__error" role="alert">
            {error}
          </p>
        ) : null}
        <ConfirmDialog
          open={confirming}
          title="Cancel this consultation?"
          confirmLabel="Yes, cancel it"
          cancelLabel="No, keep it"
          busy={busy}
          error={error}
          onConfirm={() => run(() => cancelAppointment(c.id), `Cancelled: ${who}. The patient has been told.`)}
          onClose={() => setConfirming(false)}
        >
          <p>
            {modeLabel(c.mode)} consultation with {c.patientName} at {formatTimeOfDay(c.startsAt)}. The patient will be
            told, and the time will be offered to other patients.
          </p>
        </ConfirmDialog>
      </td>
    </tr>
  );
}

function DayList({ schedule, onChanged }: { schedule: ClinicianSchedule; onChanged: (a: Appointment, message: string) => void }) {
  const now = useClock();
  const caption = `Consultations on ${formatLongDate(schedule.date)}`;
  if (schedule.appointments.length === 0) {
    return <p className="empty-state card">No consultations booked for this day.</p>;
  }
  return (
    <div className="table-scroll" role="region" aria-label={caption} tabIndex={0}>
      <table className="table table--cards schedule">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Patient</th>
            <th scope="col">Date of birth</th>
            <th scope="col">Type</th>
            <th scope="col">Reason</th>
            <th scope="col">Status</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {schedule.appointments.map((c) => (
            <ConsultationRow key={c.id} consultation={c} now={now} onChanged={onChanged} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Schedule() {
  const [params, setParams] = useSearchParams();
  const requested = params.get('date');
  const date = requested && isDateKey(requested) ? requested : undefined;
  // Each answer remembers which day was asked for, so a late or stale one is not shown as another day.
  const { result, reload, setData } = useApi(
    () => getClinicianSchedule(date).then((schedule) => ({ requested: date, schedule })),
    [date],
  );
  const [message, setMessage] = useState('');
  const shown = result.status === 'ok' && result.data.requested === date ? result.data.schedule : null;
  const [draft, setDraft] = useState(date ?? '');

  // The date box follows the day on screen (after the buttons, or the server's "today").
  useEffect(() => {
    if (shown) setDraft(shown.date);
  }, [shown?.date]);

  useEffect(() => setMessage(''), [date]);

  const clinicToday = shown ? dateKeyOf(new Date(), shown.timeZone) : undefined;
  const current = date ?? shown?.date;

  function go(next: string | undefined) {
    setParams(next ? { date: next } : {}, { replace: false });
  }

  function onChanged(changed: Appointment, text: string) {
    if (shown) {
      setData({
        requested: date,
        schedule: {
          ...shown,
          appointments: shown.appointments.map((c) =>
            c.id === changed.id ? { ...c, status: changed.status, cancelledBy: changed.cancelledBy } : c,
          ),
        },
      });
    }
    setMessage(text);
  }

  return (
    <section aria-labelledby="day-heading">
      <div className="day-nav">
        <TextField
          id="schedule-date"
          label="Date"
          type="date"
          className="input--date"
          value={draft}
          onChange={(e) => {
            setDraft(e.target.value);
            if (isDateKey(e.target.value)) go(e.target.value);
          }}
        />
        <div className="button-row day-nav__buttons">
          <button
            type="button"
            className="button button--secondary"
            disabled={!current}
            onClick={() => current && go(addDaysTo(current, -1))}
          >
            Previous day
          </button>
          <button
            type="button"
            className="button button--secondary"
            disabled={!current}
            onClick={() => current && go(addDaysTo(current, 1))}
          >
            Next day
          </button>
          {current && clinicToday && current !== clinicToday ? (
            <button type="button" className="link-button" onClick={() => go(undefined)}>
              Back to today
            </button>
          ) : null}
        </div>
      </div>
      <h2 id="day-heading" aria-live="polite">
        {current ? formatLongDate(current) : 'Loading…'}
        {current && current === clinicToday ? <span className="muted"> (today)</span> : null}
      </h2>
      <p role="status" className="status-line">
        {message}
      </p>
      <LoadedContent result={result} what="consultations" onRetry={reload}>
        {({ requested, schedule }) =>
          // While another day loads, the last one's list is not shown under the new date.
          requested !== date ? (
            <Loading label="Loading consultations…" />
          ) : (
            <>
              {schedule.appointments.length > 0 ? (
                <p className="muted">
                  {daySummary(schedule.appointments)}
                  {schedule.timeZone !== localTimeZone()
                    ? ` Times are in your time zone (${localTimeZone()}); the date is the practice's (${schedule.timeZone}).`
                    : ''}
                </p>
              ) : null}
              <DayList schedule={schedule} onChanged={onChanged} />
            </>
          )
        }
      </LoadedContent>
    </section>
  );
}

export function ClinicianHomePage() {
  usePageTitle("Today's consultations");
  const joinOn = useFeatureOn('consultation_join');
  return (
    <div className="wide">
      <h1>Today's consultations</h1>
      {joinOn ? null : <FeatureOffNotice feature="consultation_join" id={JOIN_OFF_ID} />}
      <WaitingRoom />
      <Schedule />
      <ul className="link-list after-form">
        <li>
          <Link to="/clinician/availability">Set your weekly hours and leave</Link>
        </li>
        <li>
          <Link to="/clinician/replays">Recorded consultations</Link>
        </li>
        <li>
          <Link to="/clinician/colleagues">Colleagues</Link>
        </li>
      </ul>
      <p>
        <Link to="/account/security">Account security</Link>
      </p>
    </div>
  );
}

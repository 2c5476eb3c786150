import { useMemo, useState } from 'react';
import type { FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { ApiError, bookAppointment, errorMessage, listClinicians, listMyAppointments } from '../api';
import type { ConsultationMode, Slot } from '../api-types';
import { ErrorSummary } from '../components/error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from '../components/form-errors';
import type { FormErrors } from '../components/form-errors';
import { FeatureOffNotice } from '../components/feature-off';
import { LoadedContent, Loading } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { SlotPicker, groupSlotsByDay, slotKey } from '../components/slot-picker';
import { RadiosField, SelectField, TextareaField } from '../components/text-field';
import { formatWhen, localTimeZone, modeLabel } from '../format';
import type { Appointment } from '../api-types';
import { useFeatureOn } from '../feature-status';
import { useApi } from '../use-api';
import { useFreeSlots } from '../use-free-slots';

export const REASON_MAX = 500;
const FIELDS = ['clinicianId', 'startsAt', 'mode', 'reason'] as const;
const idFor = (field: string) => `book-${field}`;
/** Answers that mean the chosen time is no longer on offer: the list is refreshed. */
export const SLOT_GONE = new Set(['slot_taken', 'slot_in_past', 'slot_unavailable']);

export const MODE_OPTIONS = [
  { value: 'video', label: 'Video', hint: 'You and the GP see and hear each other.' },
  { value: 'audio', label: 'Audio only', hint: 'Like a phone call. You can switch to video during the consultation.' },
];

/** "Times are in your time zone (Europe/London)", and the practice's zone when it differs. */
export function zoneHint(clinicTimeZone: string | undefined): string {
  const mine = localTimeZone();
  const base = `Times are shown in your time zone (${mine}).`;
  return clinicTimeZone && clinicTimeZone !== mine ? `${base} The practice is in ${clinicTimeZone}.` : base;
}

export function PatientBookPage() {
  usePageTitle('Book a consultation');
  const booking = useFeatureOn('booking');
  if (!booking) {
    return (
      <>
        <h1>Book a consultation</h1>
        <FeatureOffNotice feature="booking" recheck />
        <p>
          <Link to="/patient/appointments">See your appointments</Link>
        </p>
        <p>In an emergency call 999.</p>
      </>
    );
  }
  return <BookingForm />;
}

function BookingForm() {
  const navigate = useNavigate();
  const [clinicianId, setClinicianId] = useState('');
  const [slotsVersion, setSlotsVersion] = useState(0);
  const [selected, setSelected] = useState<Slot | null>(null);
  const [mode, setMode] = useState<'' | ConsultationMode>('');
  const [reason, setReason] = useState('');
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [tooMany, setTooMany] = useState(false);
  const [busy, setBusy] = useState(false);

  const clinicians = useApi(listClinicians);
  // What the patient already holds: at the limit, say so before they fill in the form.
  const mine = useApi(listMyAppointments);
  const slots = useFreeSlots({ clinicianId: clinicianId || undefined, onePerTime: clinicianId === '' }, [slotsVersion]);
  const current = slots.result.status === 'ok' ? slots.result.data : null;
  const days = useMemo(() => (current ? groupSlotsByDay(current.slots) : []), [current?.slots]);

  function chooseClinician(id: string) {
    setClinicianId(id);
    setSelected(null);
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    setTooMany(false);
    const trimmed = reason.trim();
    const problems = fieldErrors({
      startsAt: selected ? null : 'Choose a time for your consultation.',
      mode: mode ? null : 'Choose video or audio only.',
      reason: !trimmed
        ? 'Tell the GP briefly why you are booking.'
        : trimmed.length > REASON_MAX
          ? `Keep the reason to ${REASON_MAX} characters or fewer.`
          : null,
    });
    setErrors(problems);
    if (problems.summary || !selected || !mode) return;
    setBusy(true);
    try {
      const appointment = await bookAppointment({
        clinicianId: selected.clinicianId,
        startsAt: selected.startsAt,
        mode,
        reason: trimmed,
      });
      navigate('/patient/appointments', { state: { booked: appointment } });
    } catch (error) {
      const code = error instanceof ApiError ? error.code : '';
      if (SLOT_GONE.has(code)) {
        setSelected(null);
        setSlotsVersion((v) => v + 1);
        const message = `${errorMessage(error)} The list of free times has been refreshed.`;
        setErrors({ summary: message, fields: { startsAt: message } });
      } else {
        setTooMany(code === 'too_many_bookings');
        if (code === 'too_many_bookings') mine.reload();
        if (code === 'unknown_clinician') {
          chooseClinician('');
          clinicians.reload();
        }
        setErrors(formErrorsFrom(error, FIELDS, { unknown_clinician: 'clinicianId' }));
      }
      setBusy(false);
    }
  }

  const slotMinutes = current?.slotMinutes;

  const held = mine.result.status === 'ok' ? mine.result.data : null;
  if (held && held.upcoming.length >= held.maxUpcoming) {
    return <AtTheLimit upcoming={held.upcoming} max={held.maxUpcoming} />;
  }

  return (
    <>
      <h1>Book a consultation</h1>
      <p>
        See a GP by video or by phone{slotMinutes ? `. Consultations last ${slotMinutes} minutes` : ''}. In an
        emergency call 999.
      </p>
      <ErrorSummary errors={errors} idFor={idFor} />
      {tooMany ? (
        <p className="notice notice--info">
          <Link to="/patient/appointments">See your appointments</Link> to cancel or move one.
        </p>
      ) : null}
      <form onSubmit={submit} noValidate className="booking-form">
        <LoadedContent result={clinicians.result} what="GPs" onRetry={clinicians.reload}>
          {({ clinicians: list }) => (
            <SelectField
              id={idFor('clinicianId')}
              label="GP"
              hint="Choose a GP if you would like to see someone in particular."
              value={clinicianId}
              onChange={(e) => chooseClinician(e.target.value)}
              error={errors.fields.clinicianId}
            >
              <option value="">Any GP</option>
              {list.map((c) => (
                <option key={c.id} value={c.id}>
                  {c.displayName}
                </option>
              ))}
            </SelectField>
          )}
        </LoadedContent>

        <LoadedContent result={slots.result} what="free times" onRetry={slots.reload}>
          {(current) =>
            days.length === 0 ? (
              <div className="field">
                <p className="field__label">Time</p>
                <p className="empty-state card" id={idFor('startsAt')} tabIndex={-1}>
                  {clinicianId
                    ? 'This GP has no free times in the coming days. Choose “Any GP” to see other GPs.'
                    : 'There are no free times in the coming days. Please try again later.'}
                </p>
              </div>
            ) : (
              <SlotPicker
                key={clinicianId}
                id={idFor('startsAt')}
                name="slot"
                legend="Time"
                hint={`Earliest first.${clinicianId ? '' : ' Each time shows the GP it is with.'} ${zoneHint(current.timeZone)}`}
                error={errors.fields.startsAt}
                days={days}
                value={selected ? slotKey(selected) : null}
                onChange={setSelected}
                showClinician={clinicianId === ''}
                dayHeadingLevel={2}
                more={{ available: current.next !== null, loading: current.loadingMore, error: current.moreError, load: slots.loadMore }}
              />
            )
          }
        </LoadedContent>

        <RadiosField
          id={idFor('mode')}
          name="mode"
          legend="Consultation type"
          options={MODE_OPTIONS}
          value={mode}
          onChange={(v) => setMode(v as ConsultationMode)}
          error={errors.fields.mode}
        />

        <TextareaField
          id={idFor('reason')}
          label="Reason for the consultation"
          hint="Tell the GP briefly what you would like to talk about. They read it before your consultation."
          rows={5}
          maxChars={REASON_MAX}
          value={reason}
          onChange={(e) => setReason(e.target.value)}
          error={errors.fields.reason}
        />

        <div className="booking-summary" aria-live="polite">
          {selected ? (
            <p>
              <strong>Your choice:</strong> {formatWhen(selected.startsAt)} with {selected.clinicianName}
              {mode ? `, ${modeLabel(mode).toLowerCase()}` : ''}.
            </p>
          ) : null}
        </div>
        <button type="submit" className="button" disabled={busy}>
          Book consultation
        </button>
      </form>
    </>
  );
}

/** The patient already holds as many upcoming consultations as allowed: say so, and offer to manage them. */
function AtTheLimit({ upcoming, max }: { upcoming: Appointment[]; max: number }) {
  return (
    <>
      <h1>Book a consultation</h1>
      <div className="notice notice--info">
        <p>
          You already have {upcoming.length} upcoming consultation{upcoming.length === 1 ? '' : 's'}, the most you can hold
          at a time ({max}). To book another, cancel or move one of them, or wait until one has taken place.
        </p>
      </div>
      <h2>Your upcoming consultations</h2>
      <ul>
        {upcoming.map((a) => (
          <li key={a.id}>
            {formatWhen(a.startsAt)} with {a.clinician.displayName}, {modeLabel(a.mode).toLowerCase()}
          </li>
        ))}
      </ul>
      <p>
        <Link className="button" to="/patient/appointments">
          Manage your appointments
        </Link>
      </p>
      <p>In an emergency call 999.</p>
    </>
  );
}

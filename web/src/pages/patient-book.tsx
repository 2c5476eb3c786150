import { useMemo, useState } from 'react';
import type { FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { ApiError, bookAppointment, errorMessage, listClinicians, listFreeSlots } from '../api';
import type { ConsultationMode, Slot } from '../api-types';
import { ErrorSummary } from '../components/error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from '../components/form-errors';
import type { FormErrors } from '../components/form-errors';
import { LoadedContent, Loading } from '../components/loading';
import { usePageTitle } from '../components/page-title';
import { SlotPicker, groupSlotsByDay, slotKey } from '../components/slot-picker';
import { RadiosField, SelectField, TextareaField } from '../components/text-field';
import { formatWhen, localTimeZone, modeLabel } from '../format';
import { useApi } from '../use-api';

export const REASON_MAX = 500;
/** The most the API returns in one answer; enough for a few days of a small practice. */
export const SLOT_LIMIT = 500;
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
  // Each answer remembers which GP it was for: while another GP's times load, none are offered.
  const slots = useApi(
    () => listFreeSlots({ clinicianId: clinicianId || undefined, limit: SLOT_LIMIT }).then((list) => ({ for: clinicianId, list })),
    [clinicianId, slotsVersion],
  );
  const current = slots.result.status === 'ok' && slots.result.data.for === clinicianId ? slots.result.data.list : null;
  const days = useMemo(
    () =>
      current
        ? groupSlotsByDay(current.slots, { truncated: current.slots.length >= SLOT_LIMIT, onePerTime: clinicianId === '' })
        : [],
    [current, clinicianId],
  );

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
        if (code === 'unknown_clinician') {
          chooseClinician('');
          clinicians.reload();
        }
        setErrors(formErrorsFrom(error, FIELDS, { unknown_clinician: 'clinicianId' }));
      }
      setBusy(false);
    }
  }

  const timeZone = current?.timeZone;
  const slotMinutes = current?.slotMinutes;

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
          {() =>
            !current ? (
              <Loading label="Loading free times…" />
            ) : days.length === 0 ? (
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
                id={idFor('startsAt')}
                name="slot"
                legend="Time"
                hint={`Earliest first. ${zoneHint(timeZone)}`}
                error={errors.fields.startsAt}
                days={days}
                value={selected ? slotKey(selected) : null}
                onChange={setSelected}
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

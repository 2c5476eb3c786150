import { useRef, useState } from 'react';
import type { FormEvent } from 'react';
import { addAvailabilityException, errorMessage, getAvailability, removeAvailabilityException, replaceWeeklyAvailability } from '../api';
import type { Availability, AvailabilityException, ExceptionReason, WeeklyRule } from '../api-types';
import { WEEKDAYS, formatWhen, localTimeZone, toDateTimeLocal } from '../format';
import { useApi } from '../use-api';
import { ErrorSummary } from './error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from './form-errors';
import type { FormErrors } from './form-errors';
import { LoadedContent } from './loading';
import { SelectField, TextField } from './text-field';

// ---------------------------------------------------------------------------------------------
// Weekly hours

interface Period {
  key: number;
  start: string;
  end: string;
}
type Week = Record<number, Period[]>;

const DAYS = [1, 2, 3, 4, 5, 6, 7] as const;
const dayName = (weekday: number) => WEEKDAYS[weekday - 1] ?? `Day ${weekday}`;

/** "9:00", "09.00" or "0900" → "09:00"; null when it is not a time (24:00 only as an end). */
function normaliseTime(value: string, asEnd: boolean): string | null {
  const m = /^\s*(\d{1,2})[:.]?(\d{2})\s*$/.exec(value);
  if (!m) return null;
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (min > 59 || h > 24 || (h === 24 && (min !== 0 || !asEnd))) return null;
  return `${String(h).padStart(2, '0')}:${String(min).padStart(2, '0')}`;
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3));

interface EditorProps {
  availability: Availability;
  /** Whose hours: "self" for the clinician's own page, else the clinician's name (admin). */
  owner: string;
}

function WeeklyHours({ availability, owner, onSaved }: EditorProps & { onSaved: (a: Availability) => void }) {
  const nextKey = useRef(0);
  const toWeek = (rules: WeeklyRule[]): Week => {
    const week: Week = {};
    for (const d of DAYS) week[d] = [];
    for (const r of rules) week[r.weekday]?.push({ key: nextKey.current++, start: r.start, end: r.end });
    return week;
  };
  const [week, setWeek] = useState<Week>(() => toWeek(availability.rules));
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);
  const fieldId = (weekday: number, key: number, part: 'start' | 'end') => `hours-${weekday}-${key}-${part}`;
  const periodsOf = (weekday: number) => week[weekday] ?? [];

  function change(weekday: number, key: number, part: 'start' | 'end', value: string) {
    setMessage('');
    setWeek((w) => ({ ...w, [weekday]: (w[weekday] ?? []).map((p) => (p.key === key ? { ...p, [part]: value } : p)) }));
  }

  function add(weekday: number) {
    setMessage('');
    const periods = periodsOf(weekday);
    const last = periods[periods.length - 1];
    const period = last ? { key: nextKey.current++, start: last.end, end: '' } : { key: nextKey.current++, start: '09:00', end: '17:00' };
    setWeek((w) => ({ ...w, [weekday]: [...(w[weekday] ?? []), period] }));
    // Focus the new period's first box once it is on screen.
    requestAnimationFrame(() => document.getElementById(fieldId(weekday, period.key, last ? 'end' : 'start'))?.focus());
  }

  function remove(weekday: number, key: number) {
    setMessage('');
    setWeek((w) => ({ ...w, [weekday]: (w[weekday] ?? []).filter((p) => p.key !== key) }));
  }

  function copyToEveryDay(weekday: number) {
    const source = periodsOf(weekday);
    const next: Week = {};
    for (const d of DAYS) {
      next[d] = d === weekday ? source : source.map((p) => ({ key: nextKey.current++, start: p.start, end: p.end }));
    }
    setWeek(next);
    setMessage(`${dayName(weekday)}'s hours copied to every day. Save to keep them.`);
  }

  function check(): { rules: WeeklyRule[]; errors: FormErrors } {
    const problems: Record<string, string> = {};
    const rules: WeeklyRule[] = [];
    for (const d of DAYS) {
      const periods: { key: number; start: string; end: string }[] = [];
      for (const [i, p] of periodsOf(d).entries()) {
        const label = `${dayName(d)} period ${i + 1}`;
        const start = normaliseTime(p.start, false);
        const end = normaliseTime(p.end, true);
        if (!start) problems[fieldId(d, p.key, 'start')] = `${label}: enter a start time such as 09:00.`;
        if (!end) problems[fieldId(d, p.key, 'end')] = `${label}: enter an end time such as 17:30 (24:00 for midnight).`;
        if (start && end && minutesOf(end) <= minutesOf(start)) {
          problems[fieldId(d, p.key, 'end')] = `${label}: the end must be after the start.`;
        }
        if (start && end) periods.push({ key: p.key, start, end });
      }
      const sorted = [...periods].sort((a, b) => minutesOf(a.start) - minutesOf(b.start));
      for (let i = 1; i < sorted.length; i++) {
        const prev = sorted[i - 1]!;
        const cur = sorted[i]!;
        if (minutesOf(cur.start) < minutesOf(prev.end) && !problems[fieldId(d, cur.key, 'start')]) {
          problems[fieldId(d, cur.key, 'start')] = `${dayName(d)}: two periods overlap (${prev.start}–${prev.end} and ${cur.start}–${cur.end}).`;
        }
      }
      for (const p of sorted) rules.push({ weekday: d, start: p.start, end: p.end });
    }
    return { rules, errors: fieldErrors(problems) };
  }

  async function save(event: FormEvent) {
    event.preventDefault();
    setMessage('');
    const { rules, errors: problems } = check();
    setErrors(problems);
    if (problems.summary) return;
    setBusy(true);
    try {
      const saved = await replaceWeeklyAvailability(availability.clinicianId, rules);
      setWeek(toWeek(saved.rules));
      onSaved(saved);
      setMessage('Weekly hours saved. New bookings follow them; consultations already booked are kept.');
    } catch (error) {
      setErrors(formErrorsFrom(error, []));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="panel" aria-labelledby="weekly-hours-heading">
      <h2 id="weekly-hours-heading">Weekly hours</h2>
      <p>
        {owner === 'self' ? 'The hours you take' : `The hours ${owner} takes`} consultations each week, in the
        practice's time zone ({availability.timeZone}). Use 24-hour
        times such as 09:00; to work until midnight, end at 24:00. Consultations are {availability.slotMinutes} minutes
        long.
      </p>
      <ErrorSummary errors={errors} idFor={(id) => id} />
      <form onSubmit={save} noValidate aria-labelledby="weekly-hours-heading">
        <div className="week">
          {DAYS.map((d) => {
            const periods = periodsOf(d);
            return (
              <fieldset className="weekday" key={d}>
                <legend className="weekday__name">{dayName(d)}</legend>
                <div className="weekday__periods">
                  {periods.length === 0 ? <p className="muted weekday__off">Not available</p> : null}
                  {periods.map((p, i) => {
                    const context = `${dayName(d)}, period ${i + 1}`;
                    const problems = (['start', 'end'] as const)
                      .map((part) => ({ part, id: fieldId(d, p.key, part), message: errors.fields[fieldId(d, p.key, part)] }))
                      .filter((e): e is { part: 'start' | 'end'; id: string; message: string } => Boolean(e.message));
                    return (
                      <div className={problems.length > 0 ? 'period period--error' : 'period'} key={p.key}>
                        {problems.map((e) => (
                          <p className="field__error period__error" id={`${e.id}-error`} key={e.part}>
                            <span className="visually-hidden">Error: </span>
                            {e.message}
                          </p>
                        ))}
                        <div className="period__row">
                          {(['start', 'end'] as const).map((part) => {
                            const id = fieldId(d, p.key, part);
                            const error = errors.fields[id];
                            return (
                              <div className="period__field" key={part}>
                                <label className="period__label" htmlFor={id}>
                                  {part === 'start' ? 'From' : 'Until'}
                                  <span className="visually-hidden"> ({context})</span>
                                </label>
                                <input
                                  id={id}
                                  className={error ? 'input input--time input--error' : 'input input--time'}
                                  inputMode="numeric"
                                  autoComplete="off"
                                  spellCheck={false}
                                  placeholder={part === 'start' ? '09:00' : '17:00'}
                                  value={p[part]}
                                  onChange={(e) => change(d, p.key, part, e.target.value)}
                                  aria-invalid={error ? true : undefined}
                                  aria-describedby={error ? `${id}-error` : undefined}
                                />
                              </div>
                            );
                          })}
                          <button type="button" className="link-button period__remove" onClick={() => remove(d, p.key)}>
                            Remove<span className="visually-hidden"> {context}</span>
                          </button>
                        </div>
                      </div>
                    );
                  })}
                </div>
                <div className="weekday__actions">
                  <button type="button" className="link-button" onClick={() => add(d)}>
                    Add period<span className="visually-hidden"> on {dayName(d)}</span>
                  </button>
                  {periods.length > 0 ? (
                    <button type="button" className="link-button" onClick={() => copyToEveryDay(d)}>
                      Copy {dayName(d)} to every day
                    </button>
                  ) : null}
                </div>
              </fieldset>
            );
          })}
        </div>
        <p role="status" className="status-line">
          {message}
        </p>
        <button type="submit" className="button" disabled={busy}>
          Save weekly hours
        </button>
      </form>
    </section>
  );
}

// ---------------------------------------------------------------------------------------------
// Leave and blocked time

const REASONS: { value: ExceptionReason; label: string }[] = [
  { value: 'leave', label: 'Leave' },
  { value: 'blocked', label: 'Blocked' },
  { value: 'training', label: 'Training' },
  { value: 'other', label: 'Other' },
];
const reasonLabel = (reason: string) => REASONS.find((r) => r.value === reason)?.label ?? reason;
const NOTE_MAX = 200;
const EXCEPTION_FIELDS = ['startsAt', 'endsAt', 'reason', 'note'] as const;
const exceptionId = (field: string) => `exception-${field}`;

function ExceptionRow({ exception, onDelete }: { exception: AvailabilityException; onDelete: (e: AvailabilityException) => Promise<void> }) {
  const [busy, setBusy] = useState(false);
  const description = `${reasonLabel(exception.reason)} from ${formatWhen(exception.startsAt)} to ${formatWhen(exception.endsAt)}`;
  return (
    <tr>
      <td data-label="From">
        <time dateTime={exception.startsAt}>{formatWhen(exception.startsAt)}</time>
      </td>
      <td data-label="Until">
        <time dateTime={exception.endsAt}>{formatWhen(exception.endsAt)}</time>
      </td>
      <td data-label="Reason">{reasonLabel(exception.reason)}</td>
      <td className="break" data-label="Note">{exception.note ?? <span className="muted">–</span>}</td>
      <td>
        <button
          type="button"
          className="button button--secondary button--danger button--small"
          disabled={busy}
          onClick={() => {
            setBusy(true);
            onDelete(exception).finally(() => setBusy(false));
          }}
        >
          Delete<span className="visually-hidden"> {description}</span>
        </button>
      </td>
    </tr>
  );
}

function Exceptions({ availability, onChanged }: { availability: Availability; onChanged: (a: Availability) => void }) {
  const [startsAt, setStartsAt] = useState('');
  const [endsAt, setEndsAt] = useState('');
  const [reason, setReason] = useState<ExceptionReason>('leave');
  const [note, setNote] = useState('');
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [message, setMessage] = useState('');
  const [listError, setListError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const zone = localTimeZone();
  const now = toDateTimeLocal(new Date());

  async function add(event: FormEvent) {
    event.preventDefault();
    setMessage('');
    const start = startsAt ? new Date(startsAt) : null;
    const end = endsAt ? new Date(endsAt) : null;
    const problems = fieldErrors({
      startsAt: !start || Number.isNaN(start.getTime()) ? 'Enter the date and time it starts.' : null,
      endsAt:
        !end || Number.isNaN(end.getTime())
          ? 'Enter the date and time it ends.'
          : start && end.getTime() <= start.getTime()
            ? 'The end must be after the start.'
            : null,
      note: note.trim().length > NOTE_MAX ? `Keep the note to ${NOTE_MAX} characters or fewer.` : null,
    });
    setErrors(problems);
    if (problems.summary || !start || !end) return;
    setBusy(true);
    try {
      const input = { startsAt: start.toISOString(), endsAt: end.toISOString(), reason, ...(note.trim() ? { note: note.trim() } : {}) };
      const updated = await addAvailabilityException(availability.clinicianId, input);
      onChanged(updated);
      setStartsAt('');
      setEndsAt('');
      setNote('');
      setMessage(`${reasonLabel(reason)} added, from ${formatWhen(input.startsAt)} to ${formatWhen(input.endsAt)}. No new bookings will be offered in that time.`);
    } catch (error) {
      setErrors(formErrorsFrom(error, EXCEPTION_FIELDS));
    } finally {
      setBusy(false);
    }
  }

  async function remove(exception: AvailabilityException) {
    setMessage('');
    setListError(null);
    try {
      onChanged(await removeAvailabilityException(availability.clinicianId, exception.id));
      setMessage(`${reasonLabel(exception.reason)} from ${formatWhen(exception.startsAt)} removed.`);
    } catch (error) {
      setListError(errorMessage(error));
    }
  }

  return (
    <section className="panel" aria-labelledby="exceptions-heading">
      <h2 id="exceptions-heading">Leave and blocked time</h2>
      <p role="status" className="status-line">
        {message}
      </p>
      {listError ? (
        <p className="notice notice--error" role="alert">
          {listError}
        </p>
      ) : null}
      {availability.exceptions.length === 0 ? (
        <p className="empty-state">No leave or blocked time coming up.</p>
      ) : (
        <div className="table-scroll" role="region" aria-label="Leave and blocked time coming up" tabIndex={0}>
          <table className="table table--cards">
            <caption className="visually-hidden">Leave and blocked time coming up</caption>
            <thead>
              <tr>
                <th scope="col">From</th>
                <th scope="col">Until</th>
                <th scope="col">Reason</th>
                <th scope="col">Note</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {availability.exceptions.map((e) => (
                <ExceptionRow key={e.id} exception={e} onDelete={remove} />
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h3 id="add-exception-heading">Add leave or blocked time</h3>
      <p className="muted">Consultations already booked in that time are kept; no new ones are offered.</p>
      <ErrorSummary errors={errors} idFor={exceptionId} />
      <form onSubmit={add} noValidate aria-labelledby="add-exception-heading">
        <div className="filters__grid">
          <TextField
            id={exceptionId('startsAt')}
            label={`Start (your time zone, ${zone})`}
            type="datetime-local"
            min={now}
            value={startsAt}
            onChange={(e) => setStartsAt(e.target.value)}
            error={errors.fields.startsAt}
          />
          <TextField
            id={exceptionId('endsAt')}
            label={`End (your time zone, ${zone})`}
            type="datetime-local"
            min={startsAt || now}
            value={endsAt}
            onChange={(e) => setEndsAt(e.target.value)}
            error={errors.fields.endsAt}
          />
          <SelectField
            id={exceptionId('reason')}
            label="Reason"
            value={reason}
            onChange={(e) => setReason(e.target.value as ExceptionReason)}
            error={errors.fields.reason}
          >
            {REASONS.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </SelectField>
          <TextField
            id={exceptionId('note')}
            label="Note (optional)"
            maxLength={NOTE_MAX}
            value={note}
            onChange={(e) => setNote(e.target.value)}
            error={errors.fields.note}
          />
        </div>
        <button type="submit" className="button" disabled={busy}>
          Add leave or blocked time
        </button>
      </form>
    </section>
  );
}

/**
 * Weekly hours and leave of one clinician: their own, or (for an admin) any clinician's. Render it
 * with `key={clinicianId}` so that another clinician starts from a clean slate.
 */
export function AvailabilityEditor({ clinicianId, owner }: { clinicianId: string; owner: string }) {
  const { result, reload, setData } = useApi(() => getAvailability(clinicianId), [clinicianId]);
  return (
    <LoadedContent result={result} what="availability" onRetry={reload}>
      {(availability) => (
        <>
          <WeeklyHours availability={availability} owner={owner} onSaved={setData} />
          <Exceptions availability={availability} onChanged={setData} />
        </>
      )}
    </LoadedContent>
  );
}

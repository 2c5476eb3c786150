import type { ReactNode } from 'react';

/** A date as typed into separate day, month and year boxes. */
export interface DateParts {
  day: string;
  month: string;
  year: string;
}

export const NO_DATE: DateParts = { day: '', month: '', year: '' };

/**
 * The ISO date (YYYY-MM-DD) typed, or why it is not one, in words a person can act on.
 * `what` names the date in messages: "Date of birth must include a month".
 */
export function parseDateParts(parts: DateParts, what: string): { iso: string } | { error: string } {
  const day = parts.day.trim();
  const month = parts.month.trim();
  const year = parts.year.trim();
  if (!day && !month && !year) return { error: `Enter your ${what.toLowerCase()}.` };
  const missing = [!day && 'a day', !month && 'a month', !year && 'a year'].filter(Boolean) as string[];
  if (missing.length > 0) return { error: `${what} must include ${missing.join(' and ')}.` };
  if (!/^\d{1,2}$/.test(day) || !/^\d{1,2}$/.test(month) || !/^\d{4}$/.test(year)) {
    return { error: `${what} must be a real date, with the year in 4 digits, for example 27 3 1987.` };
  }
  const d = Number(day);
  const m = Number(month);
  const y = Number(year);
  const date = new Date(Date.UTC(y, m - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) {
    return { error: `${what} must be a real date.` };
  }
  return { iso: date.toISOString().slice(0, 10) };
}

interface DateFieldProps {
  /** The id of the day box, for an error summary to link to. */
  id: string;
  legend: string;
  hint?: ReactNode;
  error?: string | undefined;
  value: DateParts;
  onChange: (value: DateParts) => void;
  /** autocomplete tokens for a birth date (bday-day, bday-month, bday-year). */
  birthday?: boolean;
}

/**
 * Day, month and year in boxes of their own, as NHS services ask for a date someone knows by
 * heart: quicker than a calendar picker for a date decades ago, and a number pad on phones.
 */
export function DateField({ id, legend, hint, error, value, onChange, birthday }: DateFieldProps) {
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  const boxes = [
    { part: 'day', label: 'Day', className: 'input--2ch', maxLength: 2 },
    { part: 'month', label: 'Month', className: 'input--2ch', maxLength: 2 },
    { part: 'year', label: 'Year', className: 'input--4ch', maxLength: 4 },
  ] as const;
  return (
    <div className={error ? 'field field--error' : 'field'}>
      <fieldset className="fieldset" aria-describedby={describedBy}>
        <legend className="field__label">{legend}</legend>
        {hint ? (
          <p className="field__hint" id={hintId}>
            {hint}
          </p>
        ) : null}
        {error ? (
          <p className="field__error" id={errorId}>
            <span className="visually-hidden">Error: </span>
            {error}
          </p>
        ) : null}
        <div className="date-input">
          {boxes.map((box, index) => {
            const boxId = index === 0 ? id : `${id}-${box.part}`;
            return (
              <div className="date-input__item" key={box.part}>
                <label className="date-input__label" htmlFor={boxId}>
                  {box.label}
                </label>
                <input
                  id={boxId}
                  className={`input ${box.className}`}
                  inputMode="numeric"
                  autoComplete={birthday ? `bday-${box.part}` : 'off'}
                  maxLength={box.maxLength}
                  aria-invalid={error ? true : undefined}
                  value={value[box.part]}
                  onChange={(e) => onChange({ ...value, [box.part]: e.target.value.replace(/\D/g, '') })}
                />
              </div>
            );
          })}
        </div>
      </fieldset>
    </div>
  );
}

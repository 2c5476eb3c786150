import { useEffect, useId, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import type { Slot } from '../api-types';
import { dateKeyOf, formatDayLabel, formatTimeOfDay } from '../format';

/** How many times each day shows before "Show all", and how many days each "Show later days" adds. */
const FIRST_TIMES = 12;
const DAYS_AT_A_TIME = 3;

export const slotKey = (slot: Pick<Slot, 'clinicianId' | 'startsAt'>) => `${slot.clinicianId}|${slot.startsAt}`;

interface Day {
  key: string;
  label: string;
  slots: Slot[];
}

/** Free slots by day (the reader's calendar), earliest first. */
export function groupSlotsByDay(slots: Slot[]): Day[] {
  const todayKey = dateKeyOf(new Date());
  const days: Day[] = [];
  for (const slot of slots) {
    const key = dateKeyOf(slot.startsAt);
    let day = days[days.length - 1];
    if (!day || day.key !== key) {
      day = { key, label: formatDayLabel(key, todayKey), slots: [] };
      days.push(day);
    }
    day.slots.push(slot);
  }
  return days;
}

/** Later days that are not loaded yet (the list comes a few days at a time). */
export interface MoreDays {
  available: boolean;
  loading: boolean;
  error: string | null;
  load: () => void;
}

interface SlotPickerProps {
  /** The id of the first radio, for an error summary to link to. */
  id: string;
  name: string;
  legend: string;
  hint?: ReactNode;
  error?: string | undefined;
  days: Day[];
  value: string | null;
  onChange: (slot: Slot) => void;
  /** Name the GP on each time ("any GP"). */
  showClinician?: boolean;
  /** The level of each day's heading: one below the heading the picker sits under. */
  dayHeadingLevel: 2 | 3 | 4 | 5;
  more?: MoreDays;
}

/**
 * Times grouped by day. Each day is a radio group of its own, so the arrow keys stay within a day
 * and Tab moves from day to day: a keyboard user reaches any day in a few keystrokes.
 */
export function SlotPicker({ id, name, legend, hint, error, days, value, onChange, showClinician, dayHeadingLevel, more }: SlotPickerProps) {
  const DayHeading = `h${dayHeadingLevel}` as const;
  const [expanded, setExpanded] = useState<Record<string, boolean>>({});
  const [shownCount, setShownCount] = useState(DAYS_AT_A_TIME);
  // The first day revealed by "Show later days", focused once it is on screen.
  const [focusDay, setFocusDay] = useState<number | null>(null);
  const shownDays = days.slice(0, shownCount);
  const baseId = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  const firstKey = useMemo(() => (days[0]?.slots[0] ? slotKey(days[0].slots[0]) : null), [days]);
  const canShowMore = shownCount < days.length || (more?.available ?? false);

  useEffect(() => {
    if (focusDay === null || focusDay >= shownDays.length) return;
    document.getElementById(`${baseId}-day-${focusDay}`)?.focus();
    setFocusDay(null);
  }, [focusDay, shownDays.length, baseId]);

  function showLater() {
    const next = shownCount + DAYS_AT_A_TIME;
    setFocusDay(Math.min(shownCount, days.length));
    setShownCount(next);
    if (more?.available && next > days.length) more.load();
  }

  return (
    <div className={error ? 'field field--error' : 'field'}>
      <fieldset className="fieldset slot-picker" aria-describedby={describedBy}>
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
        {shownDays.map((day, dayIndex) => {
          const headingId = `${baseId}-day-${dayIndex}`;
          const listId = `${baseId}-times-${dayIndex}`;
          const showAll = expanded[day.key] === true || day.slots.some((s, i) => i >= FIRST_TIMES && slotKey(s) === value);
          const shown = showAll ? day.slots : day.slots.slice(0, FIRST_TIMES);
          return (
            <div className="slot-day" role="group" aria-labelledby={headingId} key={day.key}>
              <DayHeading className="slot-day__heading" id={headingId} tabIndex={-1}>
                {day.label}
              </DayHeading>
              <ul className="slot-grid" id={listId}>
                {shown.map((slot) => {
                  const key = slotKey(slot);
                  const radioId = key === firstKey ? id : `${baseId}-${key}`;
                  return (
                    <li key={key}>
                      <label className={showClinician ? 'slot slot--with-gp' : 'slot'}>
                        <input
                          className="slot__input"
                          type="radio"
                          id={radioId}
                          name={`${name}-${day.key}`}
                          value={key}
                          checked={value === key}
                          onChange={() => onChange(slot)}
                        />
                        <time dateTime={slot.startsAt}>{formatTimeOfDay(slot.startsAt)}</time>
                        {showClinician ? <span className="slot__gp">{slot.clinicianName}</span> : null}
                      </label>
                    </li>
                  );
                })}
              </ul>
              {day.slots.length > FIRST_TIMES && !showAll ? (
                <button
                  type="button"
                  className="link-button slot-day__more"
                  aria-controls={listId}
                  aria-expanded={false}
                  onClick={() => setExpanded((e) => ({ ...e, [day.key]: true }))}
                >
                  Show all {day.slots.length} times<span className="visually-hidden"> on {day.label}</span>
                </button>
              ) : null}
            </div>
          );
        })}
        <div aria-live="polite">
          {more?.loading ? <p className="muted">Loading later days…</p> : null}
          {more?.error ? (
            <p className="field__error">
              Later days could not be loaded: {more.error}{' '}
              <button type="button" className="link-button" onClick={more.load}>
                Try again
              </button>
            </p>
          ) : null}
        </div>
        {canShowMore && !more?.loading ? (
          <button type="button" className="button button--secondary" onClick={showLater}>
            Show later days
          </button>
        ) : null}
      </fieldset>
    </div>
  );
}

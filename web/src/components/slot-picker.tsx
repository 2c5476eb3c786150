import { useId, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import type { Slot } from '../api-types';
import { dateKeyOf, formatDayLabel, formatTimeOfDay } from '../format';

/** How many times each day shows before "Show all", and how many days before "Show later days". */
const FIRST_TIMES = 12;
const FIRST_DAYS = 3;

export const slotKey = (slot: Pick<Slot, 'clinicianId' | 'startsAt'>) => `${slot.clinicianId}|${slot.startsAt}`;

interface Day {
  key: string;
  label: string;
  slots: Slot[];
}

/**
 * Free slots by day (the reader's calendar), earliest first. With `onePerTime`, a time offered by
 * several GPs is shown once (the patient asked for any GP). When the list was cut off by the
 * request's limit, its last day is incomplete, so it is left out unless it is the only one.
 */
export function groupSlotsByDay(slots: Slot[], opts: { truncated: boolean; onePerTime: boolean }): Day[] {
  const todayKey = dateKeyOf(new Date());
  const days: Day[] = [];
  const seenTimes = new Set<string>();
  for (const slot of slots) {
    if (opts.onePerTime) {
      if (seenTimes.has(slot.startsAt)) continue;
      seenTimes.add(slot.startsAt);
    }
    const key = dateKeyOf(slot.startsAt);
    let day = days[days.length - 1];
    if (!day || day.key !== key) {
      day = { key, label: formatDayLabel(key, todayKey), slots: [] };
      days.push(day);
    }
    day.slots.push(slot);
  }
  if (opts.truncated && days.length > 1) days.pop();
  return days;
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
}

export function SlotPicker({ id, name, legend, hint, error, days, value, onChange }: SlotPickerProps) {
  const [expanded, setExpanded] = useState<Record<string, boolean>>({});
  const [allDays, setAllDays] = useState(false);
  const shownDays = allDays ? days : days.slice(0, FIRST_DAYS);
  const baseId = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  const firstKey = useMemo(() => (days[0]?.slots[0] ? slotKey(days[0].slots[0]) : null), [days]);

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
              <h3 className="slot-day__heading" id={headingId} tabIndex={-1}>
                {day.label}
              </h3>
              <ul className="slot-grid" id={listId}>
                {shown.map((slot) => {
                  const key = slotKey(slot);
                  const radioId = key === firstKey ? id : `${baseId}-${key}`;
                  return (
                    <li key={key}>
                      <label className="slot">
                        <input
                          className="slot__input"
                          type="radio"
                          id={radioId}
                          name={name}
                          value={key}
                          checked={value === key}
                          onChange={() => onChange(slot)}
                        />
                        <time dateTime={slot.startsAt}>{formatTimeOfDay(slot.startsAt)}</time>
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
        {shownDays.length < days.length ? (
          <button
            type="button"
            className="button button--secondary"
            onClick={() => {
              setAllDays(true);
              // Take keyboard users to the first day that was hidden.
              requestAnimationFrame(() => document.getElementById(`${baseId}-day-${FIRST_DAYS}`)?.focus());
            }}
          >
            Show later days
          </button>
        ) : null}
      </fieldset>
    </div>
  );
}

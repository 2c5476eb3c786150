import { useCallback, useEffect, useRef, useState } from 'react';
import { errorMessage, listFreeSlots } from './api';
import type { Slot } from './api-types';
import type { Loaded } from './use-api';

/** The most the API returns in one answer; a few days of a small practice. Later days load on demand. */
export const SLOT_PAGE = 500;

export interface FreeSlots {
  timeZone: string;
  slotMinutes: number;
  /** Whole clinic days only, earliest first. */
  slots: Slot[];
  /** The clinic-local date to load next, or null once the booking horizon is reached. */
  next: string | null;
  loadingMore: boolean;
  moreError: string | null;
}

/** The clinic-local date (YYYY-MM-DD) of an instant. */
function clinicDate(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(iso));
}

/**
 * One page of free slots cut to whole clinic days: an answer that hit the limit ends part-way
 * through its last day, which is left for the next page (that starts on it).
 */
async function loadPage(query: { clinicianId?: string; onePerTime?: boolean; from?: string }) {
  const list = await listFreeSlots({ ...query, limit: SLOT_PAGE });
  if (list.slots.length < SLOT_PAGE) return { list, slots: list.slots, next: null };
  const lastDay = clinicDate(list.slots[list.slots.length - 1]!.startsAt, list.timeZone);
  const whole = list.slots.filter((s) => clinicDate(s.startsAt, list.timeZone) < lastDay);
  // A single day with more slots than a page (not a real clinic): keep what came, move on a day.
  if (whole.length === 0) {
    const after = new Date(`${lastDay}T12:00:00Z`);
    after.setUTCDate(after.getUTCDate() + 1);
    return { list, slots: list.slots, next: after.toISOString().slice(0, 10) };
  }
  return { list, slots: whole, next: lastDay };
}

/**
 * Free slots for one GP or any (each time once), loaded a page at a time: `loadMore` fetches the
 * days after those shown, up to the clinic's booking horizon. `deps` reload from the start.
 */
export function useFreeSlots(query: { clinicianId?: string; onePerTime?: boolean }, deps: readonly unknown[]) {
  const [result, setResult] = useState<Loaded<FreeSlots>>({ status: 'loading' });
  const [version, setVersion] = useState(0);
  const { clinicianId, onePerTime } = query;

  useEffect(() => {
    let current = true;
    setResult({ status: 'loading' });
    loadPage({ clinicianId, onePerTime }).then(
      ({ list, slots, next }) =>
        current &&
        setResult({
          status: 'ok',
          data: { timeZone: list.timeZone, slotMinutes: list.slotMinutes, slots, next, loadingMore: false, moreError: null },
        }),
      (error: unknown) => current && setResult({ status: 'error', message: errorMessage(error) }),
    );
    return () => {
      current = false;
    };
  }, [clinicianId, onePerTime, version, ...deps]);

  // The latest result, for `loadMore` to read without starting work inside a state updater.
  const latest = useRef(result);
  latest.current = result;

  const loadMore = useCallback(() => {
    const r = latest.current;
    if (r.status !== 'ok' || !r.data.next || r.data.loadingMore) return;
    const from = r.data.next;
    // Only applied to the list still on screen, waiting for this very page.
    const update = (change: (d: FreeSlots) => FreeSlots) =>
      setResult((now) =>
        now.status === 'ok' && now.data.next === from && now.data.loadingMore ? { status: 'ok', data: change(now.data) } : now,
      );
    setResult({ status: 'ok', data: { ...r.data, loadingMore: true, moreError: null } });
    loadPage({ clinicianId, onePerTime, from }).then(
      ({ slots, next }) => update((d) => ({ ...d, slots: [...d.slots, ...slots], next, loadingMore: false })),
      (error: unknown) => update((d) => ({ ...d, loadingMore: false, moreError: errorMessage(error) })),
    );
  }, [clinicianId, onePerTime]);

  const reload = useCallback(() => setVersion((v) => v + 1), []);
  return { result, loadMore, reload };
}

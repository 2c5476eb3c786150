import { describe, expect, it } from 'vitest';
import { localParts, offsetMinutes, zonedToUtc } from './clinic-time';
import { offeredSlots } from './slots';

const LONDON = 'Europe/London';
const gp = 'c0000000-0000-4000-8000-000000000001';

describe('clinic time (Europe/London)', () => {
  it('knows the offset in winter and summer', () => {
    expect(offsetMinutes(new Date('2026-01-15T12:00:00Z'), LONDON)).toBe(0);
    expect(offsetMinutes(new Date('2026-07-15T12:00:00Z'), LONDON)).toBe(60);
  });

  it('turns local wall-clock times into instants either side of the changes', () => {
    expect(zonedToUtc('2026-03-28', 9 * 60, LONDON).toISOString()).toBe('2026-03-28T09:00:00.000Z');
    expect(zonedToUtc('2026-03-30', 9 * 60, LONDON).toISOString()).toBe('2026-03-30T08:00:00.000Z');
    expect(zonedToUtc('2026-10-24', 9 * 60, LONDON).toISOString()).toBe('2026-10-24T08:00:00.000Z');
    expect(zonedToUtc('2026-10-26', 9 * 60, LONDON).toISOString()).toBe('2026-10-26T09:00:00.000Z');
  });

  it('maps a skipped time past the gap and a repeated time to its first instant', () => {
    // 29 March 2026: 01:00 GMT becomes 02:00 BST; 01:30 does not exist.
    expect(zonedToUtc('2026-03-29', 90, LONDON).toISOString()).toBe('2026-03-29T01:30:00.000Z');
    expect(localParts(new Date('2026-03-29T01:30:00Z'), LONDON).minutes).toBe(150);
    // 25 October 2026: 02:00 BST becomes 01:00 GMT; 01:30 happens twice.
    expect(zonedToUtc('2026-10-25', 90, LONDON).toISOString()).toBe('2026-10-25T00:30:00.000Z');
  });
});

describe('offered slots', () => {
  const rule = (weekday: number, from: string, to: string) => ({
    clinicianId: gp,
    weekday,
    startMinutes: Number(from.slice(0, 2)) * 60 + Number(from.slice(3)),
    endMinutes: Number(to.slice(0, 2)) * 60 + Number(to.slice(3)),
  });

  it('cuts 10-minute slots at local times, in UTC', () => {
    const slots = offeredSlots({ rules: [rule(1, '09:00', '10:00')], exceptions: [], fromDate: '2026-07-13', days: 1, tz: LONDON, slotMinutes: 10 });
    expect(slots).toHaveLength(6);
    expect(slots[0]!.startsAt.toISOString()).toBe('2026-07-13T08:00:00.000Z');
    expect(slots[5]!.endsAt.toISOString()).toBe('2026-07-13T09:00:00.000Z');
  });

  it.each([
    // 00:00–03:00 on the clock is 2 real hours in spring, 4 in autumn, 3 otherwise.
    ['spring forward, 29 March 2026', '2026-03-29', 12],
    ['fall back, 25 October 2026', '2026-10-25', 24],
    ['an ordinary Sunday', '2026-06-14', 18],
  ])('neither loses nor doubles slots across the clock change (%s)', (_label, date, expected) => {
    const slots = offeredSlots({ rules: [rule(7, '00:00', '03:00')], exceptions: [], fromDate: date, days: 1, tz: LONDON, slotMinutes: 10 });
    expect(slots).toHaveLength(expected);
    const starts = slots.map((s) => s.startsAt.getTime());
    expect(new Set(starts).size).toBe(starts.length);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBe(600_000);
  });

  it('keeps a day-time clinic the same on the change days (09:00–12:00 → 18 slots)', () => {
    for (const date of ['2026-03-29', '2026-10-25']) {
      const slots = offeredSlots({ rules: [rule(7, '09:00', '12:00')], exceptions: [], fromDate: date, days: 1, tz: LONDON, slotMinutes: 10 });
      expect(slots).toHaveLength(18);
      expect(localParts(slots[0]!.startsAt, LONDON).minutes).toBe(9 * 60);
    }
  });

  it('leaves out slots overlapping leave or a blocked afternoon, and offers overlapping rules once', () => {
    const slots = offeredSlots({
      rules: [rule(1, '09:00', '12:00'), rule(1, '11:00', '12:00')],
      exceptions: [{ clinicianId: gp, startsAt: new Date('2026-07-13T09:05:00Z'), endsAt: new Date('2026-07-13T10:00:00Z') }],
      fromDate: '2026-07-13',
      days: 1,
      tz: LONDON,
      slotMinutes: 10,
    });
    // 08:00–11:00Z offered; 09:00–10:00Z blocked (09:00 overlaps the 09:05 start).
    expect(slots).toHaveLength(12);
    expect(slots.some((s) => s.startsAt.toISOString() === '2026-07-13T09:00:00.000Z')).toBe(false);
  });
});

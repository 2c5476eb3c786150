/**
 * The clinic's wall clock. Availability is kept in local time ("Mondays 09:00–12:00"); slots
 * and bookings are instants (UTC). Converting uses the platform's time-zone data (Intl).
 */

const partsCache = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = partsCache.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      weekday: 'short',
    });
    partsCache.set(tz, f);
  }
  return f;
}

export function isValidTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

interface LocalParts {
  date: string; // YYYY-MM-DD
  minutes: number; // minutes since local midnight
  weekday: number; // ISO 1..7
}

const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

export function localParts(instant: Date, tz: string): LocalParts {
  const p: Record<string, string> = {};
  for (const part of formatter(tz).formatToParts(instant)) p[part.type] = part.value;
  return {
    date: `${p.year}-${p.month}-${p.day}`,
    minutes: Number(p.hour) * 60 + Number(p.minute),
    weekday: WEEKDAYS[p.weekday!]!,
  };
}

/** The zone's offset from UTC at an instant, in minutes (London in summer: +60). */
export function offsetMinutes(instant: Date, tz: string): number {
  const p = localParts(instant, tz);
  const [y, m, d] = p.date.split('-').map(Number) as [number, number, number];
  const asUtc = Date.UTC(y, m - 1, d, Math.floor(p.minutes / 60), p.minutes % 60);
  return Math.round((asUtc - Math.floor(instant.getTime() / 60_000) * 60_000) / 60_000);
}

/**
 * The instant at which the clinic's clock shows `date` `minutes` after midnight. A time the
 * clock skips (spring forward) maps to the instant just after the gap; a time it shows twice
 * (fall back) maps to the first of the two.
 */
export function zonedToUtc(date: string, minutes: number, tz: string): Date {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const naive = Date.UTC(y, m - 1, d, 0, minutes);
  // Try the offsets in force a day either side; keep the candidates the clock really shows.
  const offsets = new Set([offsetMinutes(new Date(naive - 86_400_000), tz), offsetMinutes(new Date(naive), tz), offsetMinutes(new Date(naive + 86_400_000), tz)]);
  const candidates = [...offsets]
    .map((o) => new Date(naive - o * 60_000))
    .filter((c) => {
      const p = localParts(c, tz);
      return p.date === date && p.minutes === minutes;
    })
    .sort((a, b) => a.getTime() - b.getTime());
  if (candidates.length > 0) return candidates[0]!;
  // In a gap the clock jumped forward, so the offset before it was the smaller one: reading
  // the time with that offset lands as far past the gap as the time was into it.
  return new Date(naive - Math.min(...offsets) * 60_000);
}

export function addDays(date: string, days: number): string {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

export function isoWeekday(date: string): number {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const wd = new Date(Date.UTC(y, m - 1, d)).getUTCDay();
  return wd === 0 ? 7 : wd;
}

export function parseTime(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  return h * 60 + m;
}

export function formatTime(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

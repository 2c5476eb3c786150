// Everything on the wire is UTC; people read local time, with the zone named so there is no doubt.

const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  timeZoneName: 'short',
});

// A date of birth is a calendar date, not an instant: format it in UTC so it never shifts a day.
const calendarDateFormat = new Intl.DateTimeFormat(undefined, {
  day: 'numeric',
  month: 'long',
  year: 'numeric',
  timeZone: 'UTC',
});

export function formatDateTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTimeFormat.format(date);
}

export function formatCalendarDate(isoDate: string): string {
  const date = new Date(`${isoDate}T00:00:00Z`);
  return Number.isNaN(date.getTime()) ? isoDate : calendarDateFormat.format(date);
}

/** NHS numbers are read in groups of 3, 3 and 4 digits. */
export function formatNhsNumber(nhsNumber: string): string {
  const digits = nhsNumber.replace(/\D/g, '');
  return digits.length === 10 ? `${digits.slice(0, 3)} ${digits.slice(3, 6)} ${digits.slice(6)}` : nhsNumber;
}

/** "Firefox on Windows" from a user-agent string; good enough to recognise one's own devices. */
export function describeDevice(userAgent: string | null): string {
  if (!userAgent) return 'Unknown device';
  const ua = userAgent;
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /OPR\/|Opera/.test(ua)
      ? 'Opera'
      : /Firefox\//.test(ua)
        ? 'Firefox'
        : /Chrom(e|ium)\//.test(ua)
          ? 'Chrome'
          : /Safari\//.test(ua)
            ? 'Safari'
            : null;
  const system = /iPhone|iPad|iPod/.test(ua)
    ? 'iOS'
    : /Android/.test(ua)
      ? 'Android'
      : /Windows/.test(ua)
        ? 'Windows'
        : /Mac OS X|Macintosh/.test(ua)
          ? 'macOS'
          : /CrOS/.test(ua)
            ? 'ChromeOS'
            : /Linux/.test(ua)
              ? 'Linux'
              : null;
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? system ?? 'Unknown device';
}

export function roleLabel(role: string | null, kind?: string): string {
  // Events recorded between the password and the second factor.
  if (role?.startsWith('pending-')) return `${roleLabel(null, kind)} (signing in)`;
  switch (role ?? kind) {
    case 'clinician':
      return 'Clinician';
    case 'dpo':
      return 'Data protection officer';
    case 'admin':
      return 'Administrator';
    case 'patient':
      return 'Patient';
    default:
      return role ?? kind ?? 'Unknown';
  }
}

/** A typed or pasted authenticator code ("123 456" → "123456"), or null if it is not 6 digits. */
export function sixDigitCode(input: string): string | null {
  const code = input.replace(/[\s-]/g, '');
  return /^\d{6}$/.test(code) ? code : null;
}

// Appointments: times are shown in the reader's zone, with the zone named.

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
const whenFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'long',
  day: 'numeric',
  month: 'long',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  timeZoneName: 'short',
});
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', timeZone: 'UTC' });
const longDayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'long',
  day: 'numeric',
  month: 'long',
  year: 'numeric',
  timeZone: 'UTC',
});

/** The reader's IANA time zone, e.g. "Europe/London". */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** "09:10 GMT" */
export function formatTimeOfDay(iso: string): string {
  return timeFormat.format(new Date(iso));
}

/** "Monday 23 November 2026 at 10:00 GMT" */
export function formatWhen(iso: string): string {
  return whenFormat.format(new Date(iso));
}

const pad = (n: number) => String(n).padStart(2, '0');

/** The calendar date (YYYY-MM-DD) of an instant, in the reader's zone or in `timeZone`. */
export function dateKeyOf(instant: Date | string, timeZone?: string): string {
  const date = typeof instant === 'string' ? new Date(instant) : instant;
  if (!timeZone) return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')}`;
}

export function addDaysTo(dateKey: string, days: number): string {
  const [y, m, d] = dateKey.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

export function isDateKey(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(new Date(`${value}T00:00:00Z`).getTime());
}

/** "Today, Sunday 22 November", "Tomorrow, Monday 23 November", "Tuesday 24 November". */
export function formatDayLabel(dateKey: string, todayKey: string): string {
  const label = dayFormat.format(new Date(`${dateKey}T00:00:00Z`));
  if (dateKey === todayKey) return `Today, ${label}`;
  if (dateKey === addDaysTo(todayKey, 1)) return `Tomorrow, ${label}`;
  return label;
}

/** "Sunday 22 November 2026" for a calendar date. */
export function formatLongDate(dateKey: string): string {
  return longDayFormat.format(new Date(`${dateKey}T00:00:00Z`));
}

export function modeLabel(mode: 'audio' | 'video'): string {
  return mode === 'video' ? 'Video' : 'Audio only';
}

export const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'] as const;

/** An `<input type="datetime-local">` value for an instant, in the reader's zone. */
export function toDateTimeLocal(date: Date): string {
  return `${dateKeyOf(date)}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * "4:05", or "1:02:09" for an hour or more. Whole seconds are cut, never rounded up, as every
 * media player counts them: a 3.9 s recording is 0:03 here and in the player beside it.
 */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/**
 * Who made a change, from the audit log's name for them (`staff:dpo:<id>`, `system(<reason>)`):
 * "Data protection officer (you)", "the system (breach guard: detection)".
 */
export function describeChanger(label: string, selfId?: string): string {
  const staff = /^staff:([a-z]+):(.+)$/.exec(label);
  if (staff) return `${roleLabel(staff[1] ?? null, 'staff')}${staff[2] === selfId ? ' (you)' : ''}`;
  const system = /^system\((.*)\)$/.exec(label);
  if (system) return system[1] ? `the system (${system[1]})` : 'the system';
  if (label === 'migration') return 'the service, at set-up';
  return label;
}

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

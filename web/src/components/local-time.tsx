import { formatDateTime } from '../format';

/** A UTC instant from the API, shown in the reader's local time with the zone. */
export function LocalTime({ iso }: { iso: string }) {
  return <time dateTime={iso}>{formatDateTime(iso)}</time>;
}

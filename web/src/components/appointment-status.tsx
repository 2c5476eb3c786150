import type { AppointmentStatus, CancelledBy } from '../api-types';

type Tone = 'green' | 'red' | 'amber' | 'blue' | 'grey';

interface StatusInput {
  status: AppointmentStatus;
  cancelledBy: CancelledBy | null;
  startsAt: string;
  endsAt: string;
}

/** What a status means to the reader: the patient ("by you") or the clinician ("by the patient"). */
export function statusLabel(
  a: StatusInput,
  reader: 'patient' | 'clinician',
  opts: { moved?: boolean; now?: number } = {},
): { label: string; tone: Tone } {
  const now = opts.now ?? Date.now();
  switch (a.status) {
    case 'completed':
      return { label: 'Completed', tone: 'green' };
    case 'no_show':
      return { label: 'No-show', tone: 'amber' };
    case 'cancelled':
      if (opts.moved) return { label: 'Moved', tone: 'grey' };
      if (reader === 'patient') {
        return { label: a.cancelledBy === 'patient' ? 'Cancelled by you' : 'Cancelled by the clinic', tone: 'red' };
      }
      return {
        label: a.cancelledBy === 'patient' ? 'Cancelled by the patient' : a.cancelledBy === 'clinician' ? 'Cancelled by you' : 'Cancelled by the practice',
        tone: 'red',
      };
    case 'booked': {
      const starts = new Date(a.startsAt).getTime();
      const ends = new Date(a.endsAt).getTime();
      if (now >= ends) return { label: 'Outcome not recorded', tone: 'grey' };
      if (now >= starts) return { label: 'In progress', tone: 'green' };
      return { label: 'Booked', tone: 'blue' };
    }
  }
}

export function StatusTag(props: { label: string; tone: Tone }) {
  return <span className={`tag tag--${props.tone}`}>{props.label}</span>;
}

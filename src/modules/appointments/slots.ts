import { addDays, isoWeekday, zonedToUtc } from './clinic-time';

export interface WeeklyRule {
  clinicianId: string;
  weekday: number; // ISO 1..7
  startMinutes: number;
  endMinutes: number;
}

export interface Interval {
  clinicianId: string;
  startsAt: Date;
  endsAt: Date;
}

export interface Slot {
  clinicianId: string;
  startsAt: Date;
  endsAt: Date;
}

/**
 * The offered slots of each clinician on local dates [fromDate, fromDate + days): every
 * rule's local start and end become instants, and slots are cut between those instants. So a
 * day whose clock changes inside a rule gets exactly the slots that fit in real time —
 * none vanished, none doubled. Slots that overlap an exception are left out.
 */
export function offeredSlots(opts: {
  rules: WeeklyRule[];
  exceptions: Interval[];
  fromDate: string;
  days: number;
  tz: string;
  slotMinutes: number;
}): Slot[] {
  const slotMs = opts.slotMinutes * 60_000;
  const out: Slot[] = [];
  for (let i = 0; i < opts.days; i++) {
    const date = addDays(opts.fromDate, i);
    const weekday = isoWeekday(date);
    for (const rule of opts.rules) {
      if (rule.weekday !== weekday) continue;
      const start = zonedToUtc(date, rule.startMinutes, opts.tz).getTime();
      const end = zonedToUtc(date, rule.endMinutes, opts.tz).getTime();
      for (let t = start; t + slotMs <= end; t += slotMs) {
        const slot = { clinicianId: rule.clinicianId, startsAt: new Date(t), endsAt: new Date(t + slotMs) };
        const blocked = opts.exceptions.some(
          (e) => e.clinicianId === rule.clinicianId && e.startsAt.getTime() < slot.endsAt.getTime() && e.endsAt.getTime() > t,
        );
        if (!blocked) out.push(slot);
      }
    }
  }
  // Overlapping rules of one clinician must not offer the same slot twice.
  const seen = new Set<string>();
  return out
    .filter((s) => {
      const k = `${s.clinicianId}|${s.startsAt.getTime()}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) => a.startsAt.getTime() - b.startsAt.getTime() || a.clinicianId.localeCompare(b.clinicianId));
}

import { SlotList, SlotQuery } from '../../contracts/appointments';
import { freeSlots, listClinicians } from '../../modules/appointments/free-slots';
import { defineRoute } from '../define-route';

export const listFreeSlots = defineRoute({
  method: 'GET',
  url: '/api/slots',
  summary: 'Free consultation slots, earliest first (today first), for any GP or one',
  tags: ['appointments'],
  access: { permission: 'slot.read' },
  feature: 'booking',
  query: SlotQuery,
  response: SlotList,
  egress: 'none',
  handler: async ({ scope, query, deps }) => {
    const clinic = deps.config.clinic;
    const [slots, clinicians] = await Promise.all([
      freeSlots(scope, clinic, { clinicianId: query.clinicianId, from: query.from, days: query.days, limit: query.limit, onePerTime: query.onePerTime }),
      listClinicians(scope),
    ]);
    const names = new Map(clinicians.map((c) => [c.id, c.displayName]));
    return {
      timeZone: clinic.timeZone,
      slotMinutes: clinic.slotMinutes,
      slots: slots.map((s) => ({
        clinicianId: s.clinicianId,
        clinicianName: names.get(s.clinicianId) ?? '',
        startsAt: s.startsAt.toISOString(),
        endsAt: s.endsAt.toISOString(),
      })),
    };
  },
});

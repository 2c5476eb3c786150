import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../src/db';
import { PAST_LIMIT } from '../../src/modules/appointments/appointments';
import { startTestService, type TestService } from '../harness';
import { latestAuditEvents, newPatient, newStaff, type StaffHandle } from '../fixtures';

/**
 * GET /api/appointments for a patient with a long history: the list query reads upcoming and
 * the most recent PAST_LIMIT others in SQL, finds "moved to" among the patient's own rows and
 * turns the database's UTC text into ISO 8601. Checked against the rows themselves, listed the
 * way the service listed them before (all rows, sorted, split and cut in JS, dates via Date).
 */
let service: TestService;
let gp: StaffHandle;

const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test: appointment history' };
const MINUTE = 60_000;

beforeAll(async () => {
  service = await startTestService();
  gp = await newStaff(service, 'clinician');
});
afterAll(async () => {
  await service?.close();
});

describe('my appointments, with a long history', () => {
  it('answers upcoming and the most recent past ones, exactly as the full list would, and audits the count', async () => {
    const p = await newPatient(service);
    const now = Date.now();
    const slot = (t: number) => Math.floor(t / (10 * MINUTE)) * 10 * MINUTE;
    // PAST_LIMIT + 12 past ones (one a day), 2 upcoming; every 7th past one cancelled.
    const past = Array.from({ length: PAST_LIMIT + 12 }, (_, i) => ({
      id: randomUUID(),
      starts: slot(now - (i + 1) * 86_400_000),
      status: i % 7 === 3 ? 'cancelled' : 'completed',
    }));
    const upcoming = [1, 2].map((d) => ({ id: randomUUID(), starts: slot(now + d * 86_400_000), status: 'booked' }));
    // A recent cancelled one (inside the window) moved to an old one (outside it), and an old
    // cancelled one (outside) moved to an upcoming one: "moved to" must not depend on the window.
    const recentMoved = past[3]!;
    const oldReplacement = past[PAST_LIMIT + 5]!;
    const oldMoved = past[PAST_LIMIT + 3]!;
    await service.db.transaction(system, async (tx) => {
      for (const a of [...past, ...upcoming]) {
        await tx
          .insertInto('appointments')
          .values({
            id: a.id,
            patient_id: p.id,
            clinician_id: gp.id,
            starts_at: new Date(a.starts),
            ends_at: new Date(a.starts + 10 * MINUTE),
            mode: 'audio',
            reason: 'History',
            status: a.status as 'booked' | 'cancelled' | 'completed',
            cancelled_by: a.status === 'cancelled' ? 'patient' : null,
            cancelled_at: a.status === 'cancelled' ? new Date(a.starts - 86_400_000) : null,
          })
          .execute();
      }
      await tx.updateTable('appointments').set({ rescheduled_from: recentMoved.id }).where('id', '=', oldReplacement.id).execute();
      await tx.updateTable('appointments').set({ rescheduled_from: oldMoved.id }).where('id', '=', upcoming[0]!.id).execute();
      // Microseconds in a timestamp: the API writes milliseconds, truncated, as Date#toISOString does.
      await sql`update appointments set created_at = timestamptz '2026-01-02 03:04:05.678999+00' where id = ${past[0]!.id}`.execute(tx);
    });

    const res = await p.client.get('/api/appointments');
    expect(res.status, JSON.stringify(res.body)).toBe(200);

    // The reference: every row, listed as the service used to (sorted, split, reversed, cut).
    const rows = await service.db.transaction(system, (tx) =>
      tx
        .selectFrom('appointments as a')
        .leftJoin('appointments as m', (j) => j.onRef('m.rescheduled_from', '=', 'a.id').onRef('m.patient_id', '=', 'a.patient_id'))
        .select(['a.id', 'a.starts_at', 'a.ends_at', 'a.status', 'a.created_at', 'a.rescheduled_from', 'm.id as rescheduled_to'])
        .where('a.patient_id', '=', p.id)
        .orderBy('a.starts_at')
        .orderBy('a.id')
        .execute(),
    );
    const views = rows.map((r) => ({
      id: r.id,
      startsAt: new Date(r.starts_at).toISOString(),
      endsAt: new Date(r.ends_at).toISOString(),
      status: r.status,
      rescheduledFrom: r.rescheduled_from,
      rescheduledTo: r.rescheduled_to,
      createdAt: new Date(r.created_at).toISOString(),
    }));
    const isUpcoming = (v: (typeof views)[number]) => v.status === 'booked' && Date.parse(v.endsAt) > Date.now();
    const expectedUpcoming = views.filter(isUpcoming);
    const expectedPast = views.filter((v) => !isUpcoming(v)).reverse().slice(0, PAST_LIMIT);

    const pick = (a: Record<string, unknown>) => ({
      id: a.id,
      startsAt: a.startsAt,
      endsAt: a.endsAt,
      status: a.status,
      rescheduledFrom: a.rescheduledFrom,
      rescheduledTo: a.rescheduledTo,
      createdAt: a.createdAt,
    });
    expect(res.body.upcoming.map(pick)).toEqual(expectedUpcoming);
    expect(res.body.past.map(pick)).toEqual(expectedPast);
    expect(res.body.upcoming).toHaveLength(2);
    expect(res.body.past).toHaveLength(PAST_LIMIT);

    const byId = new Map<string, Record<string, unknown>>([...res.body.upcoming, ...res.body.past].map((a: Record<string, unknown>) => [a.id as string, a]));
    expect(byId.get(recentMoved.id)?.rescheduledTo).toBe(oldReplacement.id);
    expect(byId.get(upcoming[0]!.id)?.rescheduledFrom).toBe(oldMoved.id);
    expect(byId.get(past[0]!.id)?.createdAt).toBe('2026-01-02T03:04:05.678Z');
    expect(byId.get(past[0]!.id)?.clinician).toEqual({ id: gp.id, displayName: 'Test clinician' });
    // Never the patient's own id in the answer (the response schema strips it).
    expect(JSON.stringify(res.body)).not.toContain(p.id);

    const [event] = (await latestAuditEvents(service, 20)).filter((e) => e.action === 'appointment.list' && e.patient_id === p.id);
    expect(event).toBeDefined();
    expect(JSON.parse(event!.details!)).toEqual({ count: PAST_LIMIT + 14 });
  });

  it('answers an empty list to a patient with no appointments', async () => {
    const p = await newPatient(service);
    const res = await p.client.get('/api/appointments');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ upcoming: [], past: [], maxUpcoming: 2 });
  });
});

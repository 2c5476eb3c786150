import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../harness';
import { dataCounts, latestAuditEvents, newPatient, newStaff, type PatientHandle, type StaffHandle } from '../fixtures';

let service: TestService;
let gp: StaffHandle;
let otherGp: StaffHandle;

/** Every day, all day: tests never depend on the hour they run at. */
async function openAllWeek(clinician: StaffHandle) {
  const res = await clinician.client.request('PUT', `/api/clinicians/${clinician.id}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

async function firstSlots(p: PatientHandle, clinicianId: string, n = 5) {
  const res = await p.client.get(`/api/slots?clinicianId=${clinicianId}&limit=${n}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.slots as { clinicianId: string; startsAt: string; endsAt: string }[];
}

async function book(p: PatientHandle, clinicianId: string, startsAt: string, mode = 'video') {
  return p.client.post('/api/appointments', { clinicianId, startsAt, mode, reason: 'Persistent cough for two weeks' });
}

beforeAll(async () => {
  service = await startTestService();
  gp = await newStaff(service, 'clinician');
  otherGp = await newStaff(service, 'clinician');
  await openAllWeek(gp);
  await openAllWeek(otherGp);
});
afterAll(async () => {
  await service?.close();
});

describe('booking', () => {
  it('offers the earliest free slots first, today first, in UTC with the clinic zone', async () => {
    const p = await newPatient(service);
    const res = await p.client.get('/api/slots?limit=10');
    expect(res.body.timeZone).toBe('Europe/London');
    expect(res.body.slotMinutes).toBe(10);
    const starts = res.body.slots.map((s: { startsAt: string }) => Date.parse(s.startsAt));
    expect(starts.length).toBe(10);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    expect(starts[0]).toBeGreaterThan(Date.now());
    expect(starts[0]).toBeLessThan(Date.now() + 20 * 60_000);
    expect(res.body.slots[0].startsAt).toMatch(/Z$/);
  });

  it('pages through later days with `from` (a clinic-local date)', async () => {
    const p = await newPatient(service);
    const tomorrow = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/London' }).format(new Date(Date.now() + 86_400_000));
    const res = await p.client.get(`/api/slots?clinicianId=${gp.id}&from=${tomorrow}&limit=3`);
    expect(res.status).toBe(200);
    expect(res.body.slots).toHaveLength(3);
    for (const s of res.body.slots) {
      expect(new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/London' }).format(new Date(s.startsAt)) >= tomorrow).toBe(true);
    }
    const beyond = await p.client.get(`/api/slots?clinicianId=${gp.id}&from=2099-01-01`);
    expect(beyond.body.slots).toEqual([]);
  });

  it('books a video consultation, lists it, tells the patient, and takes the slot off the list', async () => {
    const p = await newPatient(service);
    const [slot] = await firstSlots(p, gp.id);
    const res = await book(p, gp.id, slot!.startsAt);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ status: 'booked', mode: 'video', startsAt: slot!.startsAt, clinician: { id: gp.id, displayName: 'Test clinician' } });
    expect(res.body).not.toHaveProperty('patientId');
    const mine = await p.client.get('/api/appointments');
    expect(mine.body.upcoming.map((a: { id: string }) => a.id)).toEqual([res.body.id]);
    const notes = await p.client.get('/api/notifications');
    expect(notes.body.notifications[0]).toMatchObject({ kind: 'appointment_booked', appointmentId: res.body.id, read: false });
    const after = await firstSlots(await newPatient(service), gp.id, 50);
    expect(after.map((s) => s.startsAt)).not.toContain(slot!.startsAt);
    const events = await latestAuditEvents(service, 30);
    expect(events.some((e) => e.action === 'appointment.book' && e.object_id === res.body.id && e.patient_id === p.id && e.actor_id === p.id)).toBe(true);
    expect(events.some((e) => e.action === 'appointment.list' && e.patient_id === p.id)).toBe(true);
  });

  it('answers slot_taken to the second patient and keeps the first booking', async () => {
    const a = await newPatient(service);
    const b = await newPatient(service);
    const [, slot] = await firstSlots(a, gp.id);
    expect((await book(a, gp.id, slot!.startsAt)).status).toBe(201);
    const second = await book(b, gp.id, slot!.startsAt);
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('slot_taken');
    expect((await a.client.get('/api/appointments')).body.upcoming).toHaveLength(1);
    expect((await b.client.get('/api/appointments')).body.upcoming).toHaveLength(0);
  });

  it('caps future bookings per patient (default 2)', async () => {
    const p = await newPatient(service);
    const slots = await firstSlots(p, otherGp.id, 10);
    expect((await book(p, otherGp.id, slots[3]!.startsAt)).status).toBe(201);
    expect((await book(p, otherGp.id, slots[4]!.startsAt)).status).toBe(201);
    const third = await book(p, otherGp.id, slots[5]!.startsAt);
    expect(third.status).toBe(409);
    expect(third.body.error.code).toBe('too_many_bookings');
  });

  it('says how many upcoming consultations a patient may hold, before they try to book', async () => {
    const p = await newPatient(service);
    const mine = await p.client.get('/api/appointments');
    expect(mine.status).toBe(200);
    expect(mine.body).toMatchObject({ upcoming: [], past: [], maxUpcoming: 2 });
  });

  it('does not offer a patient a time at which they already hold a consultation, with any GP', async () => {
    const p = await newPatient(service);
    const slots = (await firstSlots(p, gp.id, 30)).slice(25);
    const held = slots[0]!.startsAt;
    expect((await book(p, gp.id, held)).status).toBe(201);
    // The other GP is free then, but this patient is not: the time is offered to others only.
    const forMe = await p.client.get(`/api/slots?clinicianId=${otherGp.id}&limit=100`);
    expect(forMe.body.slots.map((s: { startsAt: string }) => s.startsAt)).not.toContain(held);
    const anyGp = await p.client.get('/api/slots?limit=200');
    expect(anyGp.body.slots.map((s: { startsAt: string }) => s.startsAt)).not.toContain(held);
    const forOthers = await (await newPatient(service)).client.get(`/api/slots?clinicianId=${otherGp.id}&limit=100`);
    expect(forOthers.body.slots.map((s: { startsAt: string }) => s.startsAt)).toContain(held);
    // Once cancelled, the time is offered to the patient again.
    const mine = await p.client.get('/api/appointments');
    expect((await p.client.post(`/api/appointments/${mine.body.upcoming[0].id}/cancel`)).status).toBe(200);
    const again = await p.client.get(`/api/slots?clinicianId=${otherGp.id}&limit=100`);
    expect(again.body.slots.map((s: { startsAt: string }) => s.startsAt)).toContain(held);
  });

  it('lists each time once for "any GP" with onePerTime, naming the GP, so a limit reaches further', async () => {
    const p = await newPatient(service);
    const all = await p.client.get('/api/slots?limit=40');
    const once = await p.client.get('/api/slots?limit=40&onePerTime=true');
    expect(once.status).toBe(200);
    const times = (list: { startsAt: string }[]) => list.map((s) => s.startsAt);
    // Both GPs are open all week: without the option every time comes twice.
    expect(new Set(times(all.body.slots)).size).toBeLessThan(all.body.slots.length);
    expect(new Set(times(once.body.slots)).size).toBe(40);
    expect(Date.parse(once.body.slots[39].startsAt)).toBeGreaterThan(Date.parse(all.body.slots[39].startsAt));
    for (const s of once.body.slots) {
      expect([gp.id, otherGp.id]).toContain(s.clinicianId);
      expect(s.clinicianName).toBe('Test clinician');
    }
    const bad = await p.client.get('/api/slots?onePerTime=yes');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('validation_failed');
  });

  it('cancels (freeing the slot) and records who cancelled', async () => {
    const p = await newPatient(service);
    const [slot] = (await firstSlots(p, otherGp.id, 20)).slice(8);
    const booked = await book(p, otherGp.id, slot!.startsAt);
    const cancelled = await p.client.post(`/api/appointments/${booked.body.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', cancelledBy: 'patient' });
    const again = await p.client.post(`/api/appointments/${booked.body.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('appointment_not_changeable');
    const q = await newPatient(service);
    expect((await book(q, otherGp.id, slot!.startsAt)).status).toBe(201);
  });

  it('reschedules atomically: a taken target changes nothing; a free one moves the booking', async () => {
    const p = await newPatient(service);
    const other = await newPatient(service);
    const slots = (await firstSlots(p, gp.id, 40)).slice(20);
    const original = await book(p, gp.id, slots[0]!.startsAt);
    expect((await book(other, gp.id, slots[1]!.startsAt)).status).toBe(201);
    const before = await dataCounts(service);
    const blocked = await p.client.post(`/api/appointments/${original.body.id}/reschedule`, { startsAt: slots[1]!.startsAt });
    expect(blocked.status).toBe(409);
    expect(blocked.body.error.code).toBe('slot_taken');
    expect({ ...(await dataCounts(service)), audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
    expect((await p.client.get(`/api/appointments/${original.body.id}`)).body.status).toBe('booked');

    const moved = await p.client.post(`/api/appointments/${original.body.id}/reschedule`, { startsAt: slots[2]!.startsAt, mode: 'audio' });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    expect(moved.body).toMatchObject({ startsAt: slots[2]!.startsAt, mode: 'audio', status: 'booked', rescheduledFrom: original.body.id });
    const mine = await p.client.get('/api/appointments');
    expect(mine.body.upcoming.map((a: { id: string }) => a.id)).toEqual([moved.body.id]);
    expect(mine.body.past[0]).toMatchObject({ id: original.body.id, status: 'cancelled', rescheduledTo: moved.body.id });
  });

  it.each([
    ['a slot in the past', () => ({ startsAt: new Date(Date.now() - 3_600_000).toISOString() }), 422, 'slot_in_past'],
    ['a time that is not a slot', () => ({ startsAt: new Date(Math.ceil(Date.now() / 600_000) * 600_000 + 3_600_000 + 7 * 60_000).toISOString() }), 422, 'slot_unavailable'],
    ['a malformed time', () => ({ startsAt: 'tomorrow at nine' }), 400, 'validation_failed'],
    ['an unknown clinician', () => ({ clinicianId: '00000000-0000-4000-8000-000000000000' }), 422, 'unknown_clinician'],
    ['a reason of 1 MB', () => ({ reason: 'x'.repeat(1024 * 1024) }), 413, 'payload_too_large'],
    ['a reason of 501 characters', () => ({ reason: 'x'.repeat(501) }), 400, 'validation_failed'],
    ['a mode that does not exist', () => ({ mode: 'hologram' }), 400, 'validation_failed'],
  ])('refuses %s with a stable code and stores nothing', async (_label, override, status, code) => {
    const p = await newPatient(service);
    const [slot] = await firstSlots(p, gp.id);
    const before = await dataCounts(service);
    const res = await p.client.post('/api/appointments', { clinicianId: gp.id, startsAt: slot!.startsAt, mode: 'video', reason: 'Rash', ...override() });
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect({ ...(await dataCounts(service)), audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
  });
});

describe('the clinician side', () => {
  it("lists the clinician's own day with each patient's name and reason, and nobody else's", async () => {
    const p = await newPatient(service, { givenName: 'Ottoline', familyName: 'Marsh' });
    const [slot] = (await firstSlots(p, otherGp.id, 60)).slice(50);
    const booked = await book(p, otherGp.id, slot!.startsAt);
    const date = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/London' }).format(new Date(slot!.startsAt));
    const mine = await otherGp.client.get(`/api/schedule?date=${date}`);
    expect(mine.status).toBe(200);
    expect(mine.body.appointments.find((a: { id: string }) => a.id === booked.body.id)).toMatchObject({
      patientName: 'Ottoline Marsh',
      reason: 'Persistent cough for two weeks',
      mode: 'video',
    });
    const theirs = await gp.client.get(`/api/schedule?date=${date}`);
    expect(JSON.stringify(theirs.body)).not.toContain('Ottoline');
    const events = await latestAuditEvents(service, 40);
    expect(events.some((e) => e.action === 'schedule.read' && e.patient_id === p.id && e.actor_id === otherGp.id)).toBe(true);
  });

  it('lets a clinician cancel their own booking (the patient sees who cancelled) but not mark a future one completed', async () => {
    const p = await newPatient(service);
    const [slot] = (await firstSlots(p, gp.id, 80)).slice(70);
    const booked = await book(p, gp.id, slot!.startsAt);
    const early = await gp.client.post(`/api/appointments/${booked.body.id}/outcome`, { outcome: 'completed' });
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('appointment_not_started');
    const cancelled = await gp.client.post(`/api/appointments/${booked.body.id}/cancel`);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', cancelledBy: 'clinician' });
    const seen = await p.client.get(`/api/appointments/${booked.body.id}`);
    expect(seen.body).toMatchObject({ status: 'cancelled', cancelledBy: 'clinician' });
    expect((await p.client.get('/api/notifications')).body.notifications[0].kind).toBe('appointment_cancelled');
  });
});

describe('mirrors: someone else calls the same thing', () => {
  it('answers 404 to another patient, another clinician and a DPO, 401 to anonymous; writes only the denial', async () => {
    const owner = await newPatient(service);
    const [slot] = (await firstSlots(owner, gp.id, 100)).slice(90);
    const booked = await book(owner, gp.id, slot!.startsAt);
    const id = booked.body.id as string;
    const intruders = [
      { who: 'another patient', client: (await newPatient(service)).client, expected: 404 },
      { who: 'another clinician', client: otherGp.client, expected: 404 },
      { who: 'a DPO', client: (await newStaff(service, 'dpo')).client, expected: 404 },
      { who: 'anonymous', client: service.client(), expected: 401 },
    ];
    const calls: [string, string, unknown?][] = [
      ['GET', `/api/appointments/${id}`],
      ['POST', `/api/appointments/${id}/cancel`],
      ['POST', `/api/appointments/${id}/reschedule`, { startsAt: slot!.startsAt }],
      ['POST', `/api/appointments/${id}/outcome`, { outcome: 'no_show' }],
    ];
    for (const intruder of intruders) {
      for (const [method, url, body] of calls) {
        const before = await dataCounts(service);
        const res = await intruder.client.request(method, url, body);
        expect(res.status, `${intruder.who} ${method} ${url}`).toBe(intruder.expected);
        const after = await dataCounts(service);
        expect({ ...after, audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
        expect(after.audit_events - before.audit_events).toBe(1);
        expect(JSON.stringify(res.body)).not.toContain(slot!.startsAt);
      }
    }
    expect((await owner.client.get(`/api/appointments/${id}`)).body.status).toBe('booked');
  });

  it("answers 404 when someone else marks a patient's notification read, and changes nothing", async () => {
    const owner = await newPatient(service);
    const [slot] = (await firstSlots(owner, otherGp.id, 120)).slice(110);
    await book(owner, otherGp.id, slot!.startsAt);
    const [note] = (await owner.client.get('/api/notifications')).body.notifications;
    for (const client of [(await newPatient(service)).client, otherGp.client]) {
      const before = await dataCounts(service);
      const res = await client.post(`/api/notifications/${note.id}/read`);
      expect(res.status).toBe(404);
      const after = await dataCounts(service);
      expect(after.audit_events - before.audit_events).toBe(1);
    }
    expect((await owner.client.get('/api/notifications')).body.notifications[0]).toMatchObject({ id: note.id, read: false });
    expect((await owner.client.post(`/api/notifications/${note.id}/read`)).status).toBe(200);
    expect((await owner.client.get('/api/notifications')).body.notifications[0].read).toBe(true);
  });

  it("refuses a clinician's availability to another clinician and to a patient; lets an admin edit it", async () => {
    const p = await newPatient(service);
    expect((await otherGp.client.get(`/api/clinicians/${gp.id}/availability`)).status).toBe(404);
    expect((await p.client.get(`/api/clinicians/${gp.id}/availability`)).status).toBe(404);
    const admin = await newStaff(service, 'admin');
    const res = await admin.client.request('POST', `/api/clinicians/${gp.id}/availability/exceptions`, {
      startsAt: '2030-01-01T09:00:00Z',
      endsAt: '2030-01-01T17:00:00Z',
      reason: 'leave',
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.exceptions).toHaveLength(1);
  });
});

describe('concurrency', () => {
  it('gives one slot to exactly one of many concurrent attempts', async () => {
    const n = Number(process.env.BOOKING_RACE ?? 40);
    const patients = await Promise.all(Array.from({ length: n }, () => newPatient(service)));
    const [slot] = (await firstSlots(patients[0]!, otherGp.id, 200)).slice(150);
    const results = await Promise.all(patients.map((p) => book(p, otherGp.id, slot!.startsAt)));
    const won = results.filter((r) => r.status === 201);
    const lost = results.filter((r) => r.status === 409 && r.body.error.code === 'slot_taken');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(n - 1);
  });
});

import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Database } from '../../src/db';
import { newPatient, newStaff, type PatientHandle, type StaffHandle } from '../fixtures';
import { onPostgres, startTestService, type TestService } from '../harness';

// A request past its deadline (or whose client has gone) answers 503 at once and never commits
// afterwards, whatever the database does later. The database is held here by a transaction of
// the test's own: on PGlite any transaction holds the one connection; on PostgreSQL it holds the
// row (or the audit chain head) the request needs.
const DEADLINE_MS = 600;
const HOLD_MS = 2_000;

let service: TestService;
let gp: StaffHandle;
let patients: PatientHandle[];

const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test: hold the database' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Holds the appointment's row (and, on PGlite, the whole database) for `ms`. */
function holdAppointment(db: Database, appointmentId: string, ms = HOLD_MS): Promise<void> {
  return db.transaction(system, async (tx) => {
    await sql`select id from appointments where id = ${appointmentId} for update`.execute(tx);
    await sleep(ms);
  });
}

/** Holds the audit chain head (every write's last statement waits for it) and, on PGlite, the database. */
function holdAuditChain(db: Database, ms = HOLD_MS): Promise<void> {
  return db.transaction(system, async (tx) => {
    await tx.insertInto('audit_events').values({ actor_kind: 'system', action: 'test.hold', outcome: 'success', system_reason: 'test' } as never).execute();
    await sleep(ms);
  });
}

async function openAllWeek(s: TestService): Promise<StaffHandle> {
  const clinician = await newStaff(s, 'clinician');
  const res = await clinician.client.request('PUT', `/api/clinicians/${clinician.id}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  expect(res.status).toBe(200);
  return clinician;
}

/** A free slot at least half an hour away: one about to start could pass while the test holds the database. */
async function freeSlot(p: PatientHandle, clinician: StaffHandle): Promise<string> {
  const slots = (await p.client.get(`/api/slots?clinicianId=${clinician.id}&limit=20`)).body.slots as { startsAt: string }[];
  return slots.find((s) => Date.parse(s.startsAt) > Date.now() + 30 * 60_000)!.startsAt;
}

function book(p: PatientHandle, clinician: StaffHandle, startsAt: string, headers: Record<string, string> = {}) {
  return p.client.post('/api/appointments', { clinicianId: clinician.id, startsAt, mode: 'audio', reason: 'Earache' }, headers);
}

beforeAll(async () => {
  // Set-up (sign-ins hash passwords) runs with the default deadline; the tests with a short one.
  service = await startTestService();
  gp = await openAllWeek(service);
  patients = [await newPatient(service), await newPatient(service), await newPatient(service)];
  service.config.requestDeadlineMs = DEADLINE_MS;
});
afterAll(async () => {
  await service?.close();
});

describe('request deadlines', () => {
  it('answers 503 deadline_exceeded at the deadline and never cancels afterwards', async () => {
    const p = patients[0]!;
    const booked = await book(p, gp, await freeSlot(p, gp));
    expect(booked.status).toBe(201);
    await p.client.get('/api/appointments');

    const hold = holdAppointment(service.db, booked.body.id);
    await sleep(100);
    const started = performance.now();
    const res = await p.client.post(`/api/appointments/${booked.body.id}/cancel`, {}, { 'idempotency-key': 'cancel-once' });
    const took = performance.now() - started;
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('deadline_exceeded');
    expect(res.headers['retry-after']).toBe('1');
    // Answered at the deadline, long before the database let go (generous bound for a busy machine).
    expect(took).toBeLessThan(HOLD_MS - 500);
    await hold;
    await sleep(1_500);

    const mine = await p.client.get('/api/appointments');
    expect(mine.body.upcoming.find((a: { id: string }) => a.id === booked.body.id)).toMatchObject({ status: 'booked' });
    // The retry is a fresh attempt (nothing was stored under its key) and now goes through.
    const retry = await p.client.post(`/api/appointments/${booked.body.id}/cancel`, {}, { 'idempotency-key': 'cancel-once' });
    expect(retry.status).toBe(200);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    expect(retry.body.status).toBe('cancelled');
  });

  it('reports a COMMIT it stopped waiting for as outcome_unknown, and a retry with the same key books exactly once', async () => {
    const p = patients[1]!;
    const startsAt = await freeSlot(p, gp);
    const hold = holdAuditChain(service.db);
    await sleep(100);
    const res = await book(p, gp, startsAt, { 'idempotency-key': 'book-once' });
    expect(res.status).toBe(503);
    // On PostgreSQL the write's last batch (its audit event and the COMMIT) was sent and is
    // waiting on the chain head: whether it commits is not ours to know. On PGlite the request
    // never got the connection, so nothing was sent.
    expect(res.body.error.code).toBe(onPostgres ? 'outcome_unknown' : 'deadline_exceeded');
    await hold;
    await sleep(1_500);
    const retry = await book(p, gp, startsAt, { 'idempotency-key': 'book-once' });
    expect(retry.status).toBe(201);
    const mine = await p.client.get('/api/appointments');
    expect(mine.body.upcoming).toHaveLength(1);
    // The server closed the abandoned transaction when its client went (client_connection_check_interval):
    // the first attempt did not commit, so the retry was not a replay.
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
  });

  it('rolls back a booking whose client went away, and never commits it after', async () => {
    // A deadline far away: only the client leaving can stop this booking.
    service.config.requestDeadlineMs = 30_000;
    const clinician = gp;
    const p = patients[2]!;
    const startsAt = await freeSlot(p, clinician);
    const address = await service.built.app.listen({ port: 0, host: '127.0.0.1' });

    const hold = holdAuditChain(service.db);
    await sleep(100);
    const body = JSON.stringify({ clinicianId: clinician.id, startsAt, mode: 'audio', reason: 'Earache' });
    const gone = new Promise<void>((resolve) => {
      const req = httpRequest(`${address}/api/appointments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': p.client.csrf!, cookie: p.client.cookie!, 'content-length': Buffer.byteLength(body) },
      });
      req.on('error', () => resolve());
      req.end(body);
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 300);
    });
    await gone;
    await hold;
    await sleep(1_500);
    const mine = await p.client.get('/api/appointments');
    expect(mine.body.upcoming).toEqual([]);
    // The slot was free all along: the same booking, sent by a client that waits, goes through.
    expect((await book(p, clinician, startsAt)).status).toBe(201);
    const log = service.logs.join('');
    expect(log).toMatch(/"answer":"(deadline_exceeded|outcome_unknown)"/);
  });
});

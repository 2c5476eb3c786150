import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sql } from '../../src/db';
import { newPatient, newStaff, type PatientHandle, type StaffHandle } from '../fixtures';
import { onPostgres, startTestService, type TestService } from '../harness';
import { withAdmin } from '../pg-admin';

// The way pg's own tests prove it: pg_terminate_backend() on idle and busy connections, from an
// admin connection, then keep serving. Only this suite's own database is touched (the shared
// server is never restarted; the fault suite in test/faults restarts a throwaway cluster).
let service: TestService;
let gp: StaffHandle;
let patient: PatientHandle;
let database: string;

const system = { kind: 'system' as const, id: null, role: null, sessionId: null, reason: 'test' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function terminate(where: string): Promise<number> {
  return withAdmin(async (c) => {
    const r = await c.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and ${where}`, [database]);
    return r.rowCount ?? 0;
  });
}

/** Retries the way the web app does (twice, after Retry-After); every answer must be 200 or 503 database_unavailable. */
async function profileUntilServed(p: PatientHandle) {
  const answers: string[] = [];
  for (let i = 0; i < 10; i++) {
    const res = await p.client.get('/api/profile');
    answers.push(res.status === 200 ? '200' : `${res.status} ${res.body?.error?.code}`);
    if (res.status === 200) return answers;
    expect(res.headers['retry-after']).toBeDefined();
    await sleep(200);
  }
  return answers;
}

beforeAll(async () => {
  if (!onPostgres) return;
  service = await startTestService();
  gp = await newStaff(service, 'clinician');
  const open = await gp.client.request('PUT', `/api/clinicians/${gp.id}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  expect(open.status).toBe(200);
  patient = await newPatient(service);
  const r = await service.db.transaction(system, (tx) => sql<{ db: string }>`select current_database() as db`.execute(tx));
  database = r.rows[0]!.db;
});
afterAll(async () => {
  await service?.close();
});

describe.skipIf(!onPostgres)('a PostgreSQL connection that is terminated', () => {
  it('idle: every connection of the service (pool, owner, LISTEN) goes, and the next requests are served', async () => {
    const clear = vi.spyOn(service.deps.sessions, 'clear');
    expect((await patient.client.get('/api/profile')).status).toBe(200);
    expect(await terminate('true')).toBeGreaterThanOrEqual(2);
    const answers = await profileUntilServed(patient);
    expect(answers.at(-1)).toBe('200');
    for (const a of answers.slice(0, -1)) expect(a).toBe('503 database_unavailable');
    // The LISTEN connection came back by itself and, having missed whatever was said meanwhile,
    // dropped every cached session.
    await vi.waitFor(() => expect(service.logs.join('')).toMatch(/database notifications reconnected/), { timeout: 10_000 });
    expect(clear).toHaveBeenCalled();
    expect(service.logs.join('')).toMatch(/database connection lost; it will be replaced/);
    expect(service.logs.join('')).not.toMatch(/"errName":"Error","errCode":undefined/);
  });

  it('busy: a request whose statement is cut answers 503 database_unavailable at once, and its change is not made', async () => {
    const slots = (await patient.client.get(`/api/slots?clinicianId=${gp.id}&limit=20`)).body.slots as { startsAt: string }[];
    const later = slots.find((s) => Date.parse(s.startsAt) > Date.now() + 30 * 60_000)!;
    const booked = await patient.client.post('/api/appointments', { clinicianId: gp.id, startsAt: later.startsAt, mode: 'audio', reason: 'Cough' });
    expect(booked.status).toBe(201);
    // Hold the appointment's row so that the cancel waits inside the database, then cut that
    // connection (the one waiting on the lock), not ours.
    const hold = service.db.transaction(system, async (tx) => {
      await sql`select id from appointments where id = ${booked.body.id} for update`.execute(tx);
      await sleep(3_000);
    });
    await sleep(100);
    const cancel = patient.client.post(`/api/appointments/${booked.body.id}/cancel`, {});
    await vi.waitFor(async () => expect(await terminate(`wait_event_type = 'Lock'`)).toBe(1), { timeout: 2_000, interval: 50 });
    const res = await cancel;
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('database_unavailable');
    await hold;
    const mine = await patient.client.get('/api/appointments');
    expect(mine.body.upcoming.find((a: { id: string }) => a.id === booked.body.id)).toMatchObject({ status: 'booked' });
  });

  it('in a transaction: the database layer rejects it as unavailable and the pool replaces the connection', async () => {
    const started = performance.now();
    const doomed = service.db.transaction(system, (tx) => sql`select pg_sleep(10)`.execute(tx)).then(
      () => null,
      (err: unknown) => err,
    );
    await vi.waitFor(async () => expect(await terminate(`query like '%pg_sleep(10)%'`)).toBe(1), { timeout: 2_000, interval: 50 });
    expect(await doomed).toMatchObject({ code: '57P01' });
    expect(performance.now() - started).toBeLessThan(5_000);
    const after = await service.db.transaction(system, (tx) => sql<{ one: number }>`select 1 as one`.execute(tx));
    expect(after.rows).toEqual([{ one: 1 }]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireIdempotencyKeys } from '../../src/http/idempotency';
import { noRequest } from '../../src/access/request-context';
import { sql } from '../../src/db';
import { dataCounts, latestAuditEvents, newPatient, newStaff, type PatientHandle, type StaffHandle } from '../fixtures';
import { onPostgres, startTestService, type TestService } from '../harness';

let service: TestService;
let gp: StaffHandle;

beforeAll(async () => {
  service = await startTestService();
  gp = await newStaff(service, 'clinician');
  const open = await gp.client.request('PUT', `/api/clinicians/${gp.id}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  expect(open.status).toBe(200);
});
afterAll(async () => {
  await service?.close();
});

/** The `skip`+1th free slot at least half an hour away (one about to start could pass before a retry). */
async function freeSlot(p: PatientHandle, skip = 0): Promise<string> {
  const res = await p.client.get(`/api/slots?clinicianId=${gp.id}&limit=${skip + 20}`);
  const later = (res.body.slots as { startsAt: string }[]).filter((s) => Date.parse(s.startsAt) > Date.now() + 30 * 60_000);
  return later[skip]!.startsAt;
}

const booking = (startsAt: string) => ({ clinicianId: gp.id, startsAt, mode: 'audio', reason: 'Sore throat for a week' });
const key = () => `k-${crypto.randomUUID()}`;

/** The patient's own idempotency keys, read under their own principal (row-level security shows no one else's). */
async function keysOf(p: PatientHandle) {
  return service.db.transaction({ kind: 'patient', id: p.id, role: null, sessionId: null, reason: null }, (tx) =>
    tx.selectFrom('idempotency_keys').select(['key', 'status', 'route']).execute(),
  );
}

describe('Idempotency-Key', () => {
  it('answers a retried booking with the first answer and books once', async () => {
    const p = await newPatient(service);
    const k = key();
    const body = booking(await freeSlot(p));
    const first = await p.client.post('/api/appointments', body, { 'idempotency-key': k });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();

    const again = await p.client.post('/api/appointments', body, { 'idempotency-key': k });
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);

    const mine = await p.client.get('/api/appointments');
    expect(mine.body.upcoming.map((a: { id: string }) => a.id)).toEqual([first.body.id]);
    expect(await keysOf(p)).toEqual([{ key: k, status: 201, route: 'POST /api/appointments' }]);
    const events = await latestAuditEvents(service, 10);
    expect(events.find((e) => e.action === 'appointment.book' && e.actor_id === p.id && e.details?.includes('idempotentReplay'))).toBeDefined();
  });

  it('without a key, a second identical booking is a second attempt (and is refused as a clash)', async () => {
    const p = await newPatient(service);
    const body = booking(await freeSlot(p));
    expect((await p.client.post('/api/appointments', body)).status).toBe(201);
    const second = await p.client.post('/api/appointments', body);
    expect(second.status).toBe(409);
    expect(await keysOf(p)).toEqual([]);
  });

  it('refuses the same key for a different request, and changes nothing', async () => {
    const p = await newPatient(service);
    const k = key();
    expect((await p.client.post('/api/appointments', booking(await freeSlot(p)), { 'idempotency-key': k })).status).toBe(201);
    const before = await dataCounts(service);
    const other = await p.client.post('/api/appointments', booking(await freeSlot(p, 1)), { 'idempotency-key': k });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    expect(await dataCounts(service)).toEqual(before);
  });

  it('refuses a malformed key with a clear 400', async () => {
    const p = await newPatient(service);
    for (const bad of ['', 'has space', 'x'.repeat(101), 'ünicode']) {
      const res = await p.client.post('/api/appointments', booking(await freeSlot(p)), { 'idempotency-key': bad });
      expect(res.status, bad).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    expect(await keysOf(p)).toEqual([]);
  });

  it('stores nothing for an attempt that failed, so a retry after a refusal runs again', async () => {
    const p = await newPatient(service);
    const k = key();
    const refused = await p.client.post('/api/appointments', { ...booking(await freeSlot(p)), startsAt: '2000-01-01T10:00:00.000Z' }, { 'idempotency-key': k });
    expect(refused.status).toBe(422);
    expect(await keysOf(p)).toEqual([]);
  });

  it('keeps keys per caller: the same key from another patient is their own request', async () => {
    const a = await newPatient(service);
    const b = await newPatient(service);
    const k = key();
    const first = await a.client.post('/api/appointments', booking(await freeSlot(a)), { 'idempotency-key': k });
    const second = await b.client.post('/api/appointments', booking(await freeSlot(b)), { 'idempotency-key': k });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect(second.body.id).not.toBe(first.body.id);
    // Neither can see the other's stored answer.
    expect((await keysOf(a)).map((r) => r.key)).toEqual([k]);
    expect((await keysOf(b)).map((r) => r.key)).toEqual([k]);
  });

  it('answers a retried cancel with the first answer, not "not changeable"', async () => {
    const p = await newPatient(service);
    const booked = await p.client.post('/api/appointments', booking(await freeSlot(p)));
    const k = key();
    const first = await p.client.post(`/api/appointments/${booked.body.id}/cancel`, {}, { 'idempotency-key': k });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const again = await p.client.post(`/api/appointments/${booked.body.id}/cancel`, {}, { 'idempotency-key': k });
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    // A new key is a new request: the appointment is already cancelled.
    expect((await p.client.post(`/api/appointments/${booked.body.id}/cancel`, {}, { 'idempotency-key': key() })).status).toBe(409);
  });

  it("mirror: cancelling someone else's appointment with a key answers 404 and writes only the denial", async () => {
    const owner = await newPatient(service);
    const stranger = await newPatient(service);
    const booked = await owner.client.post('/api/appointments', booking(await freeSlot(owner)));
    const before = await dataCounts(service);
    const k = key();
    for (let i = 0; i < 2; i++) {
      const res = await stranger.client.post(`/api/appointments/${booked.body.id}/cancel`, {}, { 'idempotency-key': k });
      expect(res.status).toBe(404);
    }
    // Two attempts, two denials: nothing else.
    expect(await dataCounts(service)).toEqual({ ...before, audit_events: before.audit_events! + 2 });
    expect(await keysOf(stranger)).toEqual([]);
    const [denial] = await latestAuditEvents(service, 1);
    expect(denial).toMatchObject({ actor_id: stranger.id, outcome: 'denied' });
    expect((await owner.client.get('/api/appointments')).body.upcoming[0]).toMatchObject({ id: booked.body.id, status: 'booked' });
  });

  it.skipIf(!onPostgres)('two concurrent attempts with one key book once, and both get the same answer', async () => {
    const p = await newPatient(service);
    const k = key();
    const body = booking(await freeSlot(p));
    const [x, y] = await Promise.all([
      p.client.post('/api/appointments', body, { 'idempotency-key': k }),
      p.client.post('/api/appointments', body, { 'idempotency-key': k }),
    ]);
    expect([x.status, y.status]).toEqual([201, 201]);
    expect(x.body).toEqual(y.body);
    expect([x.headers['idempotent-replayed'], y.headers['idempotent-replayed']].filter(Boolean)).toEqual(['true']);
    expect((await p.client.get('/api/appointments')).body.upcoming).toHaveLength(1);
  });

  it('forgets keys after a day, under a system scope that sees no younger key', async () => {
    const p = await newPatient(service);
    const fresh = key();
    const old = key();
    expect((await p.client.post('/api/appointments', booking(await freeSlot(p)), { 'idempotency-key': fresh })).status).toBe(201);
    expect((await p.client.post('/api/appointments', booking(await freeSlot(p)), { 'idempotency-key': old })).status).toBe(201);
    // Age one key by 25 hours, as its owner (the policy lets a caller update only their own rows).
    await service.db.transaction({ kind: 'patient', id: p.id, role: null, sessionId: null, reason: null }, (tx) =>
      sql`update idempotency_keys set created_at = now() - interval '25 hours' where key = ${old}`.execute(tx),
    );
    const expired = await service.deps.scopes.system('test: expire keys', noRequest('test'), (scope) => expireIdempotencyKeys(scope));
    expect(expired).toBeGreaterThanOrEqual(1);
    expect((await keysOf(p)).map((r) => r.key)).toEqual([fresh]);
  });
});

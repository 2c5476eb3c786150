import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestClient, type TestService } from '../harness';
import { dataCounts, latestAuditEvents, newPatient, type PatientHandle } from '../fixtures';

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

const NEW_PASSWORD = 'amber-canyon-violet-drum-38';

function copyOf(c: TestClient): TestClient {
  const twin = service.client();
  twin.cookie = c.cookie;
  twin.csrf = c.csrf;
  return twin;
}

/** The stored hash, read in a system transaction (credentials have no owner policy). */
async function storedHash(accountId: string): Promise<string> {
  const row = await service.db.transaction(
    { kind: 'system', id: null, role: null, sessionId: null, reason: 'test: read credentials' },
    (tx) => tx.selectFrom('account_credentials').select('password_hash').where('account_id', '=', accountId).executeTakeFirstOrThrow(),
  );
  return row.password_hash;
}

async function signInStatus(email: string, password: string): Promise<number> {
  return (await service.client({ ip: '10.30.0.1' }).post('/api/auth/sign-in', { email, password })).status;
}

/** A patient signed in on two devices, both warmed in the session cache. */
async function patientOnTwoDevices(): Promise<{ p: PatientHandle; laptop: TestClient }> {
  const p = await newPatient(service);
  const laptop = service.client({ userAgent: 'laptop' });
  expect((await laptop.post('/api/auth/sign-in', { email: p.email, password: p.password })).status).toBe(200);
  expect((await laptop.get('/api/profile')).status).toBe(200);
  expect((await p.client.get('/api/profile')).status).toBe(200);
  return { p, laptop };
}

describe('changing the password', () => {
  it('refuses a wrong current password with 401 and changes nothing', async () => {
    const { p, laptop } = await patientOnTwoDevices();
    const hash = await storedHash(p.id);
    const cookie = p.client.cookie;
    const before = await dataCounts(service);

    const res = await p.client.post('/api/account/password', { currentPassword: 'not-my-password-at-all', newPassword: NEW_PASSWORD });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_credentials');
    expect(await dataCounts(service)).toEqual({ ...before, audit_events: before.audit_events! + 1 });
    const [event] = await latestAuditEvents(service, 1);
    expect(event).toMatchObject({ action: 'password.change', outcome: 'failure', actor_id: p.id });
    expect(JSON.stringify(event)).not.toContain('not-my-password-at-all');
    expect(JSON.stringify(event)).not.toContain(NEW_PASSWORD);

    expect(await storedHash(p.id)).toBe(hash);
    expect(p.client.cookie).toBe(cookie);
    expect((await p.client.get('/api/profile')).status).toBe(200);
    expect((await laptop.get('/api/profile')).status).toBe(200);
    expect(await signInStatus(p.email, p.password)).toBe(200);
    expect(await signInStatus(p.email, NEW_PASSWORD)).toBe(401);
  });

  it.each([
    ['too short', 'short-pass1', 'at least 12'],
    ['common', 'password1234', 'too common'],
    ['padded common', 'Qwertyuiop123!', 'too common'],
    ['the same as now', 'quiet-river-stone-lamp-91', 'different'],
  ])('refuses a weak new password (%s) with 422 and changes nothing', async (_label, newPassword, reason) => {
    const { p, laptop } = await patientOnTwoDevices();
    const hash = await storedHash(p.id);
    const cookie = p.client.cookie;
    const before = await dataCounts(service);

    const res = await p.client.post('/api/account/password', { currentPassword: p.password, newPassword });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('weak_password');
    expect(res.body.error.message).toContain(reason);
    expect(await dataCounts(service)).toEqual(before);
    expect(await storedHash(p.id)).toBe(hash);
    expect(p.client.cookie).toBe(cookie);
    expect((await laptop.get('/api/profile')).status).toBe(200);
  });

  it('refuses a new password containing the patient’s name', async () => {
    const p = await newPatient(service, { givenName: 'Zebedee' });
    const res = await p.client.post('/api/account/password', { currentPassword: p.password, newPassword: 'zebedee-harbour-lamp-7' });
    expect(res.status).toBe(422);
    expect(res.body.error.message).toContain('name');
  });

  it('on success signs out every other session, keeps the caller signed in with a new cookie, and swaps the passwords', async () => {
    const { p, laptop } = await patientOnTwoDevices();
    const oldCookie = copyOf(p.client);
    const hash = await storedHash(p.id);

    const res = await p.client.post('/api/account/password', { currentPassword: p.password, newPassword: NEW_PASSWORD });
    // The other device is signed out at once (the very next request), although its session was cached.
    const other = await laptop.get('/api/profile');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(other.status).toBe(401);
    expect(other.body.error.code).toBe('unauthenticated');
    expect(res.body.stage).toBe('full');
    expect(p.client.cookie).toBeDefined();
    expect(p.client.cookie).not.toBe(oldCookie.cookie);
    expect(p.client.csrf).not.toBe(oldCookie.csrf);

    // The caller keeps working, on its new cookie only.
    const mine = await p.client.get('/api/profile');
    expect(mine.status).toBe(200);
    expect(mine.body.patientId).toBe(p.id);
    expect((await oldCookie.get('/api/profile')).status).toBe(401);

    const sessions = await p.client.get('/api/account/sessions');
    expect(sessions.body.sessions).toHaveLength(1);
    expect(sessions.body.sessions[0].current).toBe(true);

    expect(await storedHash(p.id)).not.toBe(hash);
    expect(await storedHash(p.id)).toMatch(/^\$argon2id\$/);
    expect(await signInStatus(p.email, p.password)).toBe(401);
    expect(await signInStatus(p.email, NEW_PASSWORD)).toBe(200);

    const events = await latestAuditEvents(service, 20);
    const change = events.find((e) => e.action === 'password.change' && e.outcome === 'success' && e.actor_id === p.id);
    expect(JSON.parse(change!.details!)).toEqual({ sessionsRevoked: 2 });
    for (const e of events) expect(JSON.stringify(e)).not.toContain(NEW_PASSWORD);
  });

  it('needs a signed-in caller and the session’s CSRF token', async () => {
    const anon = await service.client().post('/api/account/password', { currentPassword: 'whatever-it-is-1', newPassword: NEW_PASSWORD });
    expect(anon.status).toBe(401);
    const p = await newPatient(service);
    const res = await p.client.request('POST', '/api/account/password', { currentPassword: p.password, newPassword: NEW_PASSWORD }, { 'x-csrf-token': 'forged' });
    expect(res.status).toBe(403);
    expect(await signInStatus(p.email, p.password)).toBe(200);
  });
});

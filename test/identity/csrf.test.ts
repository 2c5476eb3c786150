import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestClient, type TestService } from '../harness';
import { dataCounts, GOOD_PASSWORD, latestAuditEvents, newPatient, uniqueEmail, type PatientHandle } from '../fixtures';

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

/**
 * A request as a browser would send it, with full control over the CSRF header
 * (TestClient always adds one). `csrf: null` sends none at all.
 */
async function send(
  method: 'POST' | 'PATCH' | 'DELETE' | 'GET',
  url: string,
  opts: { client?: TestClient; csrf?: string | null; body?: unknown; headers?: Record<string, string> } = {},
) {
  const csrf = opts.csrf === undefined ? opts.client?.csrf : opts.csrf;
  const res = await service.built.app.inject({
    method,
    url,
    headers: {
      ...(opts.client?.cookie ? { cookie: opts.client.cookie } : {}),
      ...(method !== 'GET' ? { 'content-type': 'application/json' } : {}),
      ...(typeof csrf === 'string' ? { 'x-csrf-token': csrf } : {}),
      ...opts.headers,
    },
    ...(method !== 'GET' ? { payload: JSON.stringify(opts.body ?? {}) } : {}),
  });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

async function givenName(p: PatientHandle): Promise<string> {
  const res = await p.client.get('/api/profile');
  expect(res.status).toBe(200);
  return res.body.givenName;
}

describe('cross-site request forgery', () => {
  // Each variant tries to rename a signed-in patient.
  const variants: [string, (p: PatientHandle, other: PatientHandle) => { csrf?: string | null; headers?: Record<string, string> }][] = [
    ['no x-csrf-token header', () => ({ csrf: null })],
    ['an empty token', () => ({ csrf: '' })],
    ['a wrong token', () => ({ csrf: 'A'.repeat(43) })],
    ["another patient's session token", (_p, other) => ({ csrf: other.client.csrf! })],
    ['the right token from origin https://evil.example', () => ({ headers: { origin: 'https://evil.example' } })],
    ['the right token with sec-fetch-site: cross-site', () => ({ headers: { 'sec-fetch-site': 'cross-site' } })],
    ['the right token with sec-fetch-site: same-site', () => ({ headers: { 'sec-fetch-site': 'same-site' } })],
    ['the right token from an origin that does not parse', () => ({ headers: { origin: 'not a url' } })],
  ];

  it.each(variants)('refuses %s with 403 csrf_failed, audits it and changes nothing else', async (_label, make) => {
    const p = await newPatient(service, { givenName: 'Ada' });
    const other = await newPatient(service);
    const before = await dataCounts(service);
    const res = await send('PATCH', '/api/profile', { client: p.client, body: { givenName: 'Mallory' }, ...make(p, other) });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('csrf_failed');
    expect(await dataCounts(service)).toEqual({ ...before, audit_events: before.audit_events! + 1 });
    const [event] = await latestAuditEvents(service, 1);
    expect(event).toMatchObject({ outcome: 'denied', actor_id: p.id, action: 'profile.update' });
    expect(JSON.parse(event!.details!)).toMatchObject({ reason: 'csrf_failed', route: '/api/profile' });
    expect(await givenName(p)).toBe('Ada');
  });

  it('accepts the same change with the session’s own token, same-origin (the control)', async () => {
    const p = await newPatient(service, { givenName: 'Ada' });
    const plain = await send('PATCH', '/api/profile', { client: p.client, body: { givenName: 'Grace' } });
    expect(plain.status).toBe(200);
    const browserLike = await send('PATCH', '/api/profile', {
      client: p.client,
      body: { givenName: 'Hedy' },
      headers: { host: 'clinic.example', origin: 'https://clinic.example', 'sec-fetch-site': 'same-origin' },
    });
    expect(browserLike.status).toBe(200);
    expect(await givenName(p)).toBe('Hedy');
  });

  it("refuses the token of the same patient's other session", async () => {
    const p = await newPatient(service, { givenName: 'Ada' });
    const laptop = service.client();
    expect((await laptop.post('/api/auth/sign-in', { email: p.email, password: p.password })).status).toBe(200);
    expect(laptop.csrf).not.toBe(p.client.csrf);
    const res = await send('PATCH', '/api/profile', { client: p.client, csrf: laptop.csrf!, body: { givenName: 'Mallory' } });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('csrf_failed');
    expect(await givenName(p)).toBe('Ada');
  });

  it('a forged sign-out or session revocation does nothing', async () => {
    const p = await newPatient(service);
    const laptop = service.client();
    await laptop.post('/api/auth/sign-in', { email: p.email, password: p.password });
    const laptopSession = (await laptop.get('/api/account/sessions')).body.sessions.find((s: { current: boolean }) => s.current).id;

    const before = await dataCounts(service);
    const out = await send('POST', '/api/auth/sign-out', { client: p.client, csrf: null });
    expect(out.status).toBe(403);
    const revoke = await send('DELETE', `/api/account/sessions/${laptopSession}`, { client: p.client, headers: { 'sec-fetch-site': 'cross-site' } });
    expect(revoke.status).toBe(403);
    expect(await dataCounts(service)).toEqual({ ...before, audit_events: before.audit_events! + 2 });
    expect((await p.client.get('/api/profile')).status).toBe(200);
    expect((await laptop.get('/api/profile')).status).toBe(200);
  });

  it('without a session, a state-changing call still needs a token header and a same-origin request', async () => {
    const email = uniqueEmail();
    const registration = { givenName: 'A', familyName: 'B', dateOfBirth: '1990-01-01', email, password: GOOD_PASSWORD };
    const before = await dataCounts(service);
    const bare = await send('POST', '/api/auth/register', { csrf: null, body: registration });
    expect(bare.status).toBe(403);
    expect(bare.body.error.code).toBe('csrf_failed');
    const crossSite = await send('POST', '/api/auth/register', { csrf: 'anything', body: registration, headers: { origin: 'https://evil.example' } });
    expect(crossSite.status).toBe(403);
    expect(await dataCounts(service)).toEqual({ ...before, audit_events: before.audit_events! + 2 });
    const [event] = await latestAuditEvents(service, 1);
    expect(event).toMatchObject({ outcome: 'denied', actor_kind: 'anonymous', actor_id: null });
    expect(JSON.stringify(event)).not.toContain(email);

    // Login CSRF: a forged sign-in sets no cookie.
    const p = await newPatient(service);
    const forged = await service.built.app.inject({
      method: 'POST',
      url: '/api/auth/sign-in',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'cross-site', 'x-csrf-token': 'x' },
      payload: JSON.stringify({ email: p.email, password: p.password }),
    });
    expect(forged.statusCode).toBe(403);
    expect(forged.headers['set-cookie']).toBeUndefined();
  });

  it('GET requests need no token', async () => {
    const p = await newPatient(service);
    const profile = await send('GET', '/api/profile', { client: p.client, csrf: null });
    expect(profile.status).toBe(200);
    expect(profile.body.patientId).toBe(p.id);
    const session = await send('GET', '/api/session', { client: p.client, csrf: null });
    expect(session.status).toBe(200);
    expect(session.body.csrfToken).toBe(p.client.csrf);
  });
});

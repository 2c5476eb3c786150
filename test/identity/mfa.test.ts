import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FAILURES_PER_ACCOUNT } from '../../src/modules/identity/sign-in';
import { createStaffAccount } from '../../src/modules/identity/staff-accounts';
import { hashRecoveryCode, totpCodeAt } from '../../src/modules/identity/totp';
import { startTestService, type TestClient, type TestService } from '../harness';
import { GOOD_PASSWORD, latestAuditEvents, newPatient, newStaff, uniqueEmail } from '../fixtures';

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

const STEP_MS = 30_000;

/** A six-digit code that no step near now accepts for this secret. */
function wrongCodeFor(secret: string): string {
  const near = new Set([-2, -1, 0, 1, 2].map((k) => totpCodeAt(secret, Date.now() + k * STEP_MS)));
  for (let n = 0; ; n++) {
    const code = String((123_456 + n * 7_919) % 1_000_000).padStart(6, '0');
    if (!near.has(code)) return code;
  }
}

/** The code of the next time step: accepted (±1 step of drift) and later than any code used so far. */
const nextStepCode = (secret: string) => totpCodeAt(secret, Date.now() + STEP_MS);

function copyOf(c: TestClient): TestClient {
  const twin = service.client();
  twin.cookie = c.cookie;
  twin.csrf = c.csrf;
  return twin;
}

async function newUnenrolledStaff(role: 'admin' | 'dpo' = 'admin') {
  const email = uniqueEmail(`unenrolled-${role}`);
  const { id } = await service.deps.scopes.system('test fixture', { requestId: 'test', clientIp: null, userAgent: null }, (scope) =>
    createStaffAccount(scope, { email, displayName: `New ${role}`, role, password: GOOD_PASSWORD, mfaRequired: true }),
  );
  return { id, email, password: GOOD_PASSWORD };
}

async function signIn(email: string, password: string, client: TestClient = service.client()) {
  const res = await client.post('/api/auth/sign-in', { email, password });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { client, stage: res.body.stage as string };
}

/** A URL for a route pattern, with a random UUID for every parameter. */
const urlFor = (pattern: string) => pattern.replace(/:[A-Za-z]+/g, () => randomUUID());

describe('staff who must enrol an authenticator app', () => {
  it('signs in to stage enrol, where every other route answers 403 mfa_enrolment_required (or 401)', async () => {
    const staff = await newUnenrolledStaff();
    const { client, stage } = await signIn(staff.email, staff.password);
    expect(stage).toBe('enrol');
    const me = await client.get('/api/session');
    expect(me.body).toMatchObject({ authenticated: true, stage: 'enrol', permissions: ['mfa.enrol'] });

    const guarded = service.built.registered.filter(
      (r) => r.route && 'permission' in r.route.access && r.route.access.permission !== 'mfa.enrol',
    );
    expect(guarded.length).toBeGreaterThanOrEqual(8);
    const answers: string[] = [];
    for (const r of guarded) {
      const res = await client.request(r.method, urlFor(r.url), r.method === 'GET' ? undefined : {});
      const ok = (res.status === 403 && res.body.error.code === 'mfa_enrolment_required') || res.status === 401;
      if (!ok) answers.push(`${r.method} ${r.url} → ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(answers).toEqual([]);
    // The routes it may use are only those that finish enrolment (and the public ones).
    expect((await client.get('/api/staff')).body.error.code).toBe('mfa_enrolment_required');
  });

  it('enrols: a QR code and otpauth URI, a wrong code refused, the right one gives recovery codes and a new full session', async () => {
    const staff = await newUnenrolledStaff();
    const { client } = await signIn(staff.email, staff.password);
    const pending = copyOf(client);

    const start = await client.post('/api/auth/mfa/enrol');
    expect(start.status).toBe(200);
    expect(start.body.otpauthUri).toMatch(/^otpauth:\/\/totp\//);
    expect(start.body.qrSvg).toContain('<svg');
    const secret: string = start.body.secret;
    expect(new URL(start.body.otpauthUri).searchParams.get('secret')).toBe(secret);

    const wrong = await client.post('/api/auth/mfa/enrol/confirm', { code: wrongCodeFor(secret) });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('invalid_mfa_code');
    expect(client.cookie).toBe(pending.cookie);
    expect((await client.get('/api/session')).body.stage).toBe('enrol');

    const confirm = await client.post('/api/auth/mfa/enrol/confirm', { code: totpCodeAt(secret) });
    expect(confirm.status, JSON.stringify(confirm.body)).toBe(200);
    const codes: string[] = confirm.body.recoveryCodes;
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const c of codes) expect(c).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);

    // A new cookie for a full session; the enrol-stage one is finished.
    expect(client.cookie).toBeDefined();
    expect(client.cookie).not.toBe(pending.cookie);
    const me = await client.get('/api/session');
    expect(me.body).toMatchObject({ authenticated: true, stage: 'full', account: { id: staff.id, mfaEnabled: true } });
    expect((await client.get('/api/staff')).status).toBe(200);
    expect((await pending.get('/api/session')).body).toEqual({ authenticated: false });

    // Recovery codes are stored only as hashes.
    const stored = await service.db.transaction(
      { kind: 'system', id: null, role: null, sessionId: null, reason: 'test: read recovery codes' },
      (tx) => tx.selectFrom('mfa_recovery_codes').select('code_hash').where('account_id', '=', staff.id).execute(),
    );
    expect(stored).toHaveLength(10);
    for (const s of stored) expect(codes).not.toContain(s.code_hash);
  });

  it('after enrolling, asks for the code at sign-in, refuses a replayed code, and takes each recovery code once', async () => {
    const staff = await newUnenrolledStaff('dpo');
    const { client } = await signIn(staff.email, staff.password);
    const { secret } = (await client.post('/api/auth/mfa/enrol')).body as { secret: string };
    const enrolCode = totpCodeAt(secret);
    const confirm = await client.post('/api/auth/mfa/enrol/confirm', { code: enrolCode });
    expect(confirm.status).toBe(200);
    const recoveryCodes: string[] = confirm.body.recoveryCodes;
    expect((await client.post('/api/auth/sign-out')).status).toBe(200);

    // Stage mfa: nothing but the second step.
    const first = await signIn(staff.email, staff.password);
    expect(first.stage).toBe('mfa');
    const blocked = await first.client.post('/api/audit/events/search', {});
    expect(blocked.status).toBe(401);
    expect(blocked.body.error.code).toBe('mfa_required');

    // The code that confirmed enrolment has been used: it does not work a second time.
    const replayEnrol = await first.client.post('/api/auth/mfa/verify', { code: enrolCode });
    expect(replayEnrol.status).toBe(401);
    expect(replayEnrol.body.error.code).toBe('invalid_mfa_code');

    // A fresh code works once…
    const fresh = nextStepCode(secret);
    const ok = await first.client.post('/api/auth/mfa/verify', { code: fresh });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.stage).toBe('full');
    expect((await first.client.post('/api/audit/events/search', {})).status).toBe(200);

    // …and not twice, even though it is still inside its time window.
    const second = await signIn(staff.email, staff.password);
    expect(second.stage).toBe('mfa');
    const replay = await second.client.post('/api/auth/mfa/verify', { code: fresh });
    expect(replay.status).toBe(401);
    expect(replay.body.error.code).toBe('invalid_mfa_code');

    // A recovery code (typed in capitals) works once…
    const rc = await second.client.post('/api/auth/mfa/verify', { code: recoveryCodes[0]!.toUpperCase() });
    expect(rc.status, JSON.stringify(rc.body)).toBe(200);
    expect(rc.body.stage).toBe('full');
    const events = await latestAuditEvents(service, 5);
    const verified = events.find((e) => e.action === 'auth.mfa_verify' && e.outcome === 'success');
    expect(JSON.parse(verified!.details!)).toEqual({ method: 'recovery_code' });

    // …and only once.
    const third = await signIn(staff.email, staff.password);
    const rcAgain = await third.client.post('/api/auth/mfa/verify', { code: recoveryCodes[0]! });
    expect(rcAgain.status).toBe(401);
    expect(rcAgain.body.error.code).toBe('invalid_mfa_code');
    expect((await third.client.get('/api/session')).body.stage).toBe('mfa');
  });

  it('rotates the session at the second step: the pending cookie stops working', async () => {
    const staff = await newStaff(service, 'admin');
    const { client } = await signIn(staff.email, staff.password);
    const pending = copyOf(client);
    // newStaff already used the current step's code.
    const res = await client.post('/api/auth/mfa/verify', { code: nextStepCode(staff.secret) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(client.cookie).not.toBe(pending.cookie);
    expect((await pending.get('/api/session')).body).toEqual({ authenticated: false });
    expect((await client.get('/api/session')).body.stage).toBe('full');
  });

  it(`refuses further codes with 429 after ${MAX_FAILURES_PER_ACCOUNT} wrong ones, even a right one`, async () => {
    const staff = await newStaff(service, 'admin');
    const { client } = await signIn(staff.email, staff.password);
    for (let i = 0; i < MAX_FAILURES_PER_ACCOUNT; i++) {
      const res = await client.post('/api/auth/mfa/verify', { code: wrongCodeFor(staff.secret) });
      expect(res.status, `attempt ${i + 1}`).toBe(401);
      expect(res.body.error.code).toBe('invalid_mfa_code');
    }
    const res = await client.post('/api/auth/mfa/verify', { code: nextStepCode(staff.secret) });
    expect(res.status).toBe(429);
    expect(res.body.error.code).toBe('too_many_attempts');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect((await client.get('/api/session')).body.stage).toBe('mfa');
    const failures = (await latestAuditEvents(service, 10)).filter((e) => e.action === 'auth.mfa_verify' && e.outcome === 'failure');
    expect(failures.length).toBe(MAX_FAILURES_PER_ACCOUNT);
  });
});

describe('codes used at the same moment', () => {
  it('accepts one TOTP code once, even when it arrives on several sessions at the same time', async () => {
    const staff = await newStaff(service, 'admin');
    const clients: TestClient[] = [];
    for (let i = 0; i < 4; i++) clients.push((await signIn(staff.email, staff.password)).client);
    const code = nextStepCode(staff.secret);
    const answers = await Promise.all(clients.map((c) => c.post('/api/auth/mfa/verify', { code })));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 401, 401, 401]);
  });

  it('confirms enrolment once when the confirmation is sent twice at once, and the codes shown are the ones that work', async () => {
    const staff = await newUnenrolledStaff();
    const { client } = await signIn(staff.email, staff.password);
    const { secret } = (await client.post('/api/auth/mfa/enrol')).body as { secret: string };
    const twin = copyOf(client);
    const code = totpCodeAt(secret);
    const answers = await Promise.all([client, twin].map((c) => c.post('/api/auth/mfa/enrol/confirm', { code })));
    // The loser either raced the winner (409) or arrived after it had replaced the session (401).
    const [winner, loser] = [...answers].sort((a, b) => a.status - b.status);
    expect(winner!.status).toBe(200);
    expect([401, 409]).toContain(loser!.status);
    const shown: string[] = answers.find((a) => a.status === 200)!.body.recoveryCodes;
    const stored = await service.db.transaction(
      { kind: 'system', id: null, role: null, sessionId: null, reason: 'test: read recovery codes' },
      (tx) => tx.selectFrom('mfa_recovery_codes').select('code_hash').where('account_id', '=', staff.id).execute(),
    );
    expect(stored.map((r) => r.code_hash).sort()).toEqual(shown.map(hashRecoveryCode).sort());
  });
});

describe('patients turning on two-step sign-in', () => {
  it('enables MFA from a full session and then needs it at sign-in', async () => {
    const p = await newPatient(service);
    const before = p.client.cookie;
    const start = await p.client.post('/api/auth/mfa/enrol');
    expect(start.status).toBe(200);
    const secret: string = start.body.secret;
    expect(start.body.otpauthUri).toContain(encodeURIComponent(p.email));

    const confirm = await p.client.post('/api/auth/mfa/enrol/confirm', { code: totpCodeAt(secret) });
    expect(confirm.status, JSON.stringify(confirm.body)).toBe(200);
    expect(confirm.body.recoveryCodes).toHaveLength(10);
    expect(p.client.cookie).not.toBe(before);
    expect((await p.client.get('/api/profile')).status).toBe(200);
    expect((await p.client.get('/api/session')).body.account.mfaEnabled).toBe(true);

    // Enrolling again is refused while it is on.
    const again = await p.client.post('/api/auth/mfa/enrol');
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('mfa_already_enabled');

    const c = service.client();
    const signIn = await c.post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(signIn.status).toBe(200);
    expect(signIn.body.stage).toBe('mfa');
    const profile = await c.get('/api/profile');
    expect(profile.status).toBe(401);
    expect(profile.body.error.code).toBe('mfa_required');
    const verify = await c.post('/api/auth/mfa/verify', { code: nextStepCode(secret) });
    expect(verify.status, JSON.stringify(verify.body)).toBe(200);
    expect(verify.body.stage).toBe('full');
    const after = await c.get('/api/profile');
    expect(after.status).toBe(200);
    expect(after.body.patientId).toBe(p.id);
  });

  it('a patient without MFA signs straight in to stage full and cannot call the second step', async () => {
    const p = await newPatient(service);
    const c = service.client();
    const res = await c.post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(res.body.stage).toBe('full');
    const verify = await c.post('/api/auth/mfa/verify', { code: '123456' });
    expect(verify.status).toBe(404);
  });

  it('refuses to confirm before enrolment has started', async () => {
    const p = await newPatient(service);
    const res = await p.client.post('/api/auth/mfa/enrol/confirm', { code: '123456' });
    expect(res.status).toBe(400);
    expect((await p.client.get('/api/session')).body.account.mfaEnabled).toBe(false);
  });
});

import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_ADDRESS } from '../../src/modules/identity/sign-in';
import { startTestService, type Reply, type TestService } from '../harness';
import { latestAuditEvents, newPatient, uniqueEmail } from '../fixtures';

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

// Every test that fails sign-ins does it from its own address, so that the per-address
// counter of one test never throttles another.
let addressCounter = 0;
function freshAddress(): string {
  addressCounter++;
  return `10.20.${Math.floor(addressCounter / 200)}.${(addressCounter % 200) + 1}`;
}

function setCookieHeader(res: Reply): string {
  const h = res.headers['set-cookie'];
  return Array.isArray(h) ? h.join('\n') : (h ?? '');
}

function errorOf(res: Reply) {
  return { status: res.status, code: res.body?.error?.code, message: res.body?.error?.message };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function setDisabled(accountId: string) {
  await service.db.owner.updateTable('accounts').set({ disabled_at: new Date() }).where('id', '=', accountId).execute();
}

describe('sign-in with email and password', () => {
  it('signs in with the right password: 200, stage full, an HttpOnly session cookie that works', async () => {
    const p = await newPatient(service);
    const c = service.client({ ip: freshAddress() });
    const res = await c.post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(res.status).toBe(200);
    expect(res.body.stage).toBe('full');
    expect(typeof res.body.csrfToken).toBe('string');
    const cookie = setCookieHeader(res);
    expect(cookie).toMatch(/^confidant_session=[A-Za-z0-9_-]{43};/);
    expect(cookie).toMatch(/;\s*HttpOnly/i);
    expect(cookie).toMatch(/;\s*SameSite=Lax/i);
    expect(cookie).toMatch(/;\s*Path=\//i);
    // The response body never carries the token itself.
    expect(JSON.stringify(res.body)).not.toContain(c.cookie!.split('=')[1]);
    const profile = await c.get('/api/profile');
    expect(profile.status).toBe(200);
    expect(profile.body.patientId).toBe(p.id);
  });

  it('accepts the email in any case and with surrounding spaces', async () => {
    const p = await newPatient(service);
    const res = await service.client({ ip: freshAddress() }).post('/api/auth/sign-in', { email: `  ${p.email.toUpperCase()} `, password: p.password });
    expect(res.status).toBe(200);
    expect(res.body.stage).toBe('full');
  });

  it('answers an unknown email exactly as a wrong password, and sets no cookie', async () => {
    const p = await newPatient(service);
    const c = service.client({ ip: freshAddress() });
    const wrong = await c.post('/api/auth/sign-in', { email: p.email, password: 'not-the-right-password-1' });
    const unknown = await c.post('/api/auth/sign-in', { email: uniqueEmail('nobody'), password: 'not-the-right-password-1' });
    expect(errorOf(wrong)).toEqual({ status: 401, code: 'invalid_credentials', message: 'The email or password is not right.' });
    expect(errorOf(unknown)).toEqual(errorOf(wrong));
    expect(Object.keys(unknown.body.error).sort()).toEqual(Object.keys(wrong.body.error).sort());
    expect(setCookieHeader(wrong)).toBe('');
    expect(setCookieHeader(unknown)).toBe('');
    expect(c.cookie).toBeUndefined();
  });

  it('takes comparable time for an unknown email and a wrong password (argon2 runs in both)', async () => {
    const p = await newPatient(service);
    const c = service.client({ ip: freshAddress() });
    // Warm-up: the first unknown email computes the dummy hash it verifies against.
    await c.post('/api/auth/sign-in', { email: uniqueEmail('warmup'), password: 'warm-up-password-000' });
    // CPU time of this process (the service runs in it; argon2's threads included), not wall time:
    // on a machine busy with other work, waiting for a CPU would swamp the difference looked for.
    const cpuMs = async (call: () => Promise<{ status: number }>) => {
      const before = process.cpuUsage();
      const res = await call();
      const used = process.cpuUsage(before);
      expect(res.status).toBe(401);
      return (used.user + used.system) / 1000;
    };
    const unknownMs: number[] = [];
    const wrongMs: number[] = [];
    for (let i = 0; i < MAX_FAILURES_PER_ACCOUNT; i++) {
      unknownMs.push(await cpuMs(() => c.post('/api/auth/sign-in', { email: uniqueEmail('nobody'), password: `wrong-password-${i}-xyz` })));
      wrongMs.push(await cpuMs(() => c.post('/api/auth/sign-in', { email: p.email, password: `wrong-password-${i}-xyz` })));
    }
    const ratio = median(unknownMs) / median(wrongMs);
    expect(ratio, `unknown ${unknownMs.map(Math.round)} ms vs wrong ${wrongMs.map(Math.round)} ms of CPU`).toBeGreaterThan(0.5);
    expect(ratio, `unknown ${unknownMs.map(Math.round)} ms vs wrong ${wrongMs.map(Math.round)} ms of CPU`).toBeLessThan(2.0);
  });

  it('answers a disabled account with the same generic error, even with the right password', async () => {
    const p = await newPatient(service);
    const c = service.client({ ip: freshAddress() });
    const reference = await c.post('/api/auth/sign-in', { email: uniqueEmail('nobody'), password: p.password });
    await setDisabled(p.id);
    const res = await c.post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(errorOf(res)).toEqual(errorOf(reference));
    expect(res.body.error.code).toBe('invalid_credentials');
    expect(setCookieHeader(res)).toBe('');
    // The session it already had stops working too (once the few-second cache is gone).
    service.deps.sessions.clear();
    expect((await p.client.get('/api/profile')).status).toBe(401);
  });

  it('audits a failed attempt as a failure, without the password (or an unknown email)', async () => {
    const p = await newPatient(service);
    const ip = freshAddress();
    const c = service.client({ ip });
    const password = 'Secret-Typed-By-Mistake-4417';
    await c.post('/api/auth/sign-in', { email: p.email, password });
    let [event] = await latestAuditEvents(service, 1);
    expect(event).toMatchObject({ action: 'auth.sign_in', outcome: 'failure', object_id: p.id, patient_id: p.id, client_ip: ip });
    expect(JSON.parse(event!.details!)).toEqual({ reason: 'wrong_password' });
    expect(JSON.stringify(event)).not.toContain(password);

    const strangerEmail = uniqueEmail('stranger');
    await c.post('/api/auth/sign-in', { email: strangerEmail, password });
    [event] = await latestAuditEvents(service, 1);
    expect(event).toMatchObject({ action: 'auth.sign_in', outcome: 'failure', object_id: null, patient_id: null, client_ip: ip });
    expect(JSON.stringify(event)).not.toContain(password);
    expect(JSON.stringify(event)).not.toContain(strangerEmail);
  });

  it('audits a success naming the account', async () => {
    const p = await newPatient(service);
    await service.client({ ip: freshAddress() }).post('/api/auth/sign-in', { email: p.email, password: p.password });
    const events = await latestAuditEvents(service, 3);
    expect(events.some((e) => e.action === 'auth.sign_in' && e.outcome === 'success' && e.actor_id === p.id && e.patient_id === p.id)).toBe(true);
  });
});

describe('sign-in throttling', () => {
  it(`refuses the attempt after ${MAX_FAILURES_PER_ACCOUNT} failures for one account with 429, even with the right password`, async () => {
    const p = await newPatient(service);
    const c = service.client({ ip: freshAddress() });
    for (let i = 0; i < MAX_FAILURES_PER_ACCOUNT; i++) {
      // Writing the email in another case is the same account, and the same counter.
      const email = i % 2 ? p.email.toUpperCase() : p.email;
      const res = await c.post('/api/auth/sign-in', { email, password: `wrong-password-${i}-xyz` });
      expect(res.status, `attempt ${i + 1}`).toBe(401);
    }
    const res = await c.post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(res.status).toBe(429);
    expect(res.body.error.code).toBe('too_many_attempts');
    const retryAfter = Number(res.headers['retry-after']);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    expect(setCookieHeader(res)).toBe('');
    // The throttle is per account, not per browser: another address is refused as well.
    const elsewhere = await service.client({ ip: freshAddress() }).post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(elsewhere.status).toBe(429);
  });

  it('throttles an unknown email the same way, so a 429 reveals no account', async () => {
    const p = await newPatient(service);
    const stranger = uniqueEmail('stranger');
    const answers: Record<string, Reply> = {};
    for (const email of [p.email, stranger]) {
      const c = service.client({ ip: freshAddress() });
      for (let i = 0; i < MAX_FAILURES_PER_ACCOUNT; i++) {
        const res = await c.post('/api/auth/sign-in', { email, password: `wrong-password-${i}-xyz` });
        expect(res.status).toBe(401);
      }
      answers[email] = await c.post('/api/auth/sign-in', { email, password: 'wrong-password-last-xyz' });
    }
    const known = answers[p.email]!;
    const unknown = answers[stranger]!;
    expect(errorOf(known)).toMatchObject({ status: 429, code: 'too_many_attempts' });
    expect(errorOf(unknown)).toEqual(errorOf(known));
    expect(unknown.headers['retry-after']).toBeDefined();
  });

  it(`refuses an address after ${MAX_FAILURES_PER_ADDRESS} failures across different emails, while another address still signs in`, async () => {
    const p = await newPatient(service);
    const noisy = service.client({ ip: freshAddress() });
    for (let i = 0; i < MAX_FAILURES_PER_ADDRESS; i++) {
      const res = await noisy.post('/api/auth/sign-in', { email: uniqueEmail(`guess${i}`), password: 'wrong-password-xyz' });
      expect(res.status, `attempt ${i + 1}`).toBe(401);
    }
    // That address may no longer try anything, not even the right password of a real account.
    const blocked = await noisy.post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(blocked.status).toBe(429);
    expect(blocked.body.error.code).toBe('too_many_attempts');
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    const other = await service.client({ ip: freshAddress() }).post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(other.status).toBe(200);
    expect(other.body.stage).toBe('full');
  });

  it("clears the account's counter on a successful sign-in", async () => {
    const p = await newPatient(service);
    const c = service.client({ ip: freshAddress() });
    const failures = MAX_FAILURES_PER_ACCOUNT - 1;
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < failures; i++) {
        const res = await c.post('/api/auth/sign-in', { email: p.email, password: `wrong-password-${round}-${i}` });
        expect(res.status).toBe(401);
      }
      // Without the reset, the second round's success would be the attempt after 2 × 4 failures.
      const ok = await c.post('/api/auth/sign-in', { email: p.email, password: p.password });
      expect(ok.status, `round ${round + 1}`).toBe(200);
    }
    const wrong = await c.post('/api/auth/sign-in', { email: p.email, password: 'wrong-password-after' });
    expect(wrong.status).toBe(401);
  });
});

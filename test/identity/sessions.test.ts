import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../src/db';
import { freshDatabase, onPostgres, startTestService, testConfig, type TestClient, type TestService } from '../harness';
import { withAdmin } from '../pg-admin';
import { dataCounts, latestAuditEvents, newPatient, type PatientHandle } from '../fixtures';
import type { Scopes } from '../../src/access/scope';
import { revokeSessions } from '../../src/modules/identity/identity-repo';
import { SessionDirectory } from '../../src/modules/identity/sessions';

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => {
  await service?.close();
});

/** Another browser holding the same cookie (and CSRF token) as `c`, as a thief would. */
function copyOf(s: TestService, c: TestClient): TestClient {
  const twin = s.client();
  twin.cookie = c.cookie;
  twin.csrf = c.csrf;
  return twin;
}

async function signInOn(s: TestService, p: PatientHandle, userAgent: string): Promise<TestClient> {
  const c = s.client({ userAgent });
  const res = await c.post('/api/auth/sign-in', { email: p.email, password: p.password });
  expect(res.status).toBe(200);
  return c;
}

async function currentSessionId(c: TestClient): Promise<string> {
  const res = await c.get('/api/account/sessions');
  expect(res.status).toBe(200);
  const current = res.body.sessions.filter((s: { current: boolean }) => s.current);
  expect(current).toHaveLength(1);
  return current[0].id;
}

describe('session cookies', () => {
  it('issues a new session at every sign-in and ends the one the browser held before', async () => {
    const p = await newPatient(service);
    const registered = copyOf(service, p.client);
    const res = await p.client.post('/api/auth/sign-in', { email: p.email, password: p.password });
    expect(res.status).toBe(200);
    expect(p.client.cookie).toBeDefined();
    expect(p.client.cookie).not.toBe(registered.cookie);
    expect(p.client.csrf).not.toBe(registered.csrf);
    // One browser, one live session: the registration session ended at the new sign-in.
    expect((await registered.get('/api/profile')).status).toBe(401);
    expect((await p.client.get('/api/profile')).status).toBe(200);

    // A sign-in from another browser does not end this one; sign-out ends only its own.
    const other = await signInOn(service, p, 'second-browser');
    expect((await p.client.post('/api/auth/sign-out')).status).toBe(200);
    expect((await other.get('/api/profile')).status).toBe(200);
    expect((await p.client.get('/api/profile')).status).toBe(401);
  });

  it('stops a signed-out cookie at once, even while it was cached', async () => {
    const p = await newPatient(service);
    // Several rounds: a cache cleared only when NOTIFY comes back would slip through at least one.
    for (let round = 0; round < 5; round++) {
      const device = round === 0 ? p.client : await signInOn(service, p, `device-${round}`);
      // Warm the session cache, then keep a copy of the cookie as someone else might.
      expect((await device.get('/api/profile')).status).toBe(200);
      const stolen = copyOf(service, device);
      expect((await stolen.get('/api/profile')).status).toBe(200);

      const out = await device.post('/api/auth/sign-out');
      const after = await stolen.get('/api/profile');
      expect(out.status).toBe(200);
      expect(after.status, `round ${round + 1}`).toBe(401);
      expect(after.body.error.code).toBe('unauthenticated');
      expect(device.cookie).toBeUndefined(); // the browser's cookie is cleared
      expect((await stolen.get('/api/session')).body).toEqual({ authenticated: false });
    }
  });

  it('clears a revoked session from the cache on commit, without waiting for NOTIFY', async () => {
    // A service whose NOTIFY listener hears nothing: only the in-process path can clear the cache.
    const deaf = await startTestService({ db: { ...(await freshDatabase()), listen: async () => async () => {} } });
    try {
      const p = await newPatient(deaf);
      const stolen = copyOf(deaf, p.client);
      expect((await stolen.get('/api/profile')).status).toBe(200); // cached now
      expect((await p.client.post('/api/auth/sign-out')).status).toBe(200);
      expect((await stolen.get('/api/profile')).status).toBe(401);
    } finally {
      await deaf.close();
    }
  });

  it('does not cache a session it read just before a revocation landed', async () => {
    const p = await newPatient(service);
    const token = decodeURIComponent(/(?:^|;\s*)confidant_session=([^;]+)/.exec(p.client.cookie ?? '')![1]!);
    const request = { requestId: 'test', clientIp: null, userAgent: null };
    let directory: SessionDirectory | undefined;
    let revokeOnce = true;
    // The real lookup; right after it has read the session, the session is revoked and the
    // revocation announced, before the answer reaches the cache (the window a generation closes).
    const scopes: Scopes = {
      ...service.deps.scopes,
      run: async (principal, req, fn, opts) => {
        const out = await service.deps.scopes.run(principal, req, fn, opts);
        if (revokeOnce) {
          revokeOnce = false;
          await service.deps.scopes.system('test: revoke mid-lookup', request, (scope) => revokeSessions(scope.tx, p.id, 'test'));
          directory!.forget({ accountId: p.id, sessionIds: 'all' });
        }
        return out;
      },
    };
    directory = new SessionDirectory(scopes, service.deps.sessions.policy);
    // The lookup's own answer stands (it read the session before the revocation)...
    expect(await directory.authenticate(token, request)).not.toBeNull();
    // ...but it was not cached: the next request asks the database, which says revoked.
    expect(await directory.authenticate(token, request)).toBeNull();
  });

  it.runIf(onPostgres)('forgets every cached session when the revocation channel comes back (what was sent meanwhile is lost)', async () => {
    const p = await newPatient(service);
    const stolen = copyOf(service, p.client);
    expect((await stolen.get('/api/profile')).status).toBe(200); // cached now
    const database = (await sql<{ d: string }>`select current_database() as d`.execute(service.db.owner)).rows[0]!.d;
    await withAdmin((c) =>
      c.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = 'confidant-listen'", [database]),
    );
    // Revoked while nobody listens, with no notification at all: only the reconnect can tell.
    await sql`update sessions set revoked_at = now(), revoked_reason = 'test' where account_id = ${p.id}`.execute(service.db.owner);
    // Well inside the cache's 10 s lifetime: the subscription reconnects (0.25 s) and clears it.
    await expect.poll(async () => (await stolen.get('/api/profile')).status, { timeout: 5_000, interval: 100 }).toBe(401);
  });

  it('records the revocation and audits the sign-out', async () => {
    const p = await newPatient(service);
    const sessionId = await currentSessionId(p.client);
    await p.client.post('/api/auth/sign-out');
    const row = await service.db.owner.selectFrom('sessions').select(['revoked_at', 'revoked_reason']).where('id', '=', sessionId).executeTakeFirstOrThrow();
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toBe('signed_out');
    const events = await latestAuditEvents(service, 3);
    expect(events.some((e) => e.action === 'auth.sign_out' && e.object_id === sessionId && e.actor_id === p.id)).toBe(true);
  });

  it('signing out without a session just clears the cookie', async () => {
    const res = await service.client().post('/api/auth/sign-out');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
  });

  it('ends a session past its absolute lifetime', async () => {
    const p = await newPatient(service);
    expect((await p.client.get('/api/profile')).status).toBe(200);
    await service.db.owner
      .updateTable('sessions')
      .set({ absolute_expires_at: new Date(Date.now() - 1000) })
      .where('account_id', '=', p.id)
      .execute();
    service.deps.sessions.clear();
    expect((await p.client.get('/api/profile')).status).toBe(401);
    expect((await p.client.get('/api/session')).body).toEqual({ authenticated: false });
  });
});

describe('idle timeout', () => {
  let idle: TestService;
  beforeAll(async () => {
    idle = await startTestService({ config: testConfig({ SESSION_IDLE_MINUTES: '1' }) });
  });
  afterAll(async () => {
    await idle?.close();
  });

  async function lastSeen(accountId: string, msAgo: number) {
    await idle.db.owner
      .updateTable('sessions')
      .set({ last_seen_at: new Date(Date.now() - msAgo) })
      .where('account_id', '=', accountId)
      .execute();
    idle.deps.sessions.clear();
  }

  it('keeps a session that was used within the idle timeout', async () => {
    const p = await newPatient(idle);
    await lastSeen(p.id, 30_000);
    expect((await p.client.get('/api/profile')).status).toBe(200);
    // …and a request marks it seen again.
    const row = await idle.db.owner.selectFrom('sessions').select('last_seen_at').where('account_id', '=', p.id).executeTakeFirstOrThrow();
    expect(Date.now() - new Date(row.last_seen_at).getTime()).toBeLessThan(20_000);
  });

  it('ends a session idle for longer than the timeout', async () => {
    const p = await newPatient(idle);
    expect((await p.client.get('/api/profile')).status).toBe(200);
    await lastSeen(p.id, 2 * 60_000);
    const res = await p.client.get('/api/profile');
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthenticated');
    // Coming back does not revive it.
    await lastSeen(p.id, 2 * 60_000);
    expect((await p.client.get('/api/session')).body).toEqual({ authenticated: false });
  });

  it('says how long the idle timeout is', async () => {
    const p = await newPatient(idle);
    expect((await p.client.get('/api/session')).body.idleTimeoutSeconds).toBe(60);
  });
});

describe('devices: listing and signing out other sessions', () => {
  it('lists both devices after signing in twice, marks the current one, and hides secrets', async () => {
    const p = await newPatient(service);
    await p.client.post('/api/auth/sign-out');
    const laptop = await signInOn(service, p, 'laptop-browser');
    const phone = await signInOn(service, p, 'phone-browser');

    const res = await phone.get('/api/account/sessions');
    expect(res.status).toBe(200);
    const sessions = res.body.sessions as { id: string; current: boolean; userAgent: string; clientIp: string }[];
    expect(sessions).toHaveLength(2);
    expect(sessions.map((s) => s.userAgent).sort()).toEqual(['laptop-browser', 'phone-browser']);
    expect(sessions.find((s) => s.current)?.userAgent).toBe('phone-browser');
    expect(sessions.filter((s) => s.current)).toHaveLength(1);
    for (const s of sessions) expect(Object.keys(s).sort()).toEqual(['clientIp', 'createdAt', 'current', 'id', 'lastSeenAt', 'userAgent']);

    const fromLaptop = await laptop.get('/api/account/sessions');
    expect(fromLaptop.body.sessions.find((s: { current: boolean }) => s.current)?.userAgent).toBe('laptop-browser');
  });

  it('signs the other device out with DELETE /api/account/sessions/:id, at once', async () => {
    const p = await newPatient(service);
    for (let round = 0; round < 3; round++) {
      const laptop = await signInOn(service, p, `laptop-${round}`);
      const laptopSession = await currentSessionId(laptop);
      expect((await laptop.get('/api/profile')).status).toBe(200); // cached

      const res = await p.client.delete(`/api/account/sessions/${laptopSession}`);
      const after = await laptop.get('/api/profile');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: true });
      expect(after.status, `round ${round + 1}`).toBe(401);
      expect((await p.client.get('/api/profile')).status).toBe(200);
      const listed = await p.client.get('/api/account/sessions');
      expect(listed.body.sessions.map((s: { id: string }) => s.id)).not.toContain(laptopSession);
      // A second time it is gone: 404, like any id that is not there.
      expect((await p.client.delete(`/api/account/sessions/${laptopSession}`)).status).toBe(404);
    }
  });

  it("answers 404 to a patient revoking another patient's session, changes nothing and audits the denial", async () => {
    const a = await newPatient(service);
    const b = await newPatient(service);
    expect((await a.client.get('/api/profile')).status).toBe(200);
    const aSession = await currentSessionId(a.client);
    expect((await b.client.get('/api/profile')).status).toBe(200);

    const before = await dataCounts(service);
    const res = await b.client.delete(`/api/account/sessions/${aSession}`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    const after = await dataCounts(service);
    expect(after).toEqual({ ...before, audit_events: before.audit_events! + 1 });

    const [event] = await latestAuditEvents(service, 1);
    expect(event).toMatchObject({ outcome: 'denied', actor_id: b.id, action: 'session.revoke' });
    expect(JSON.parse(event!.details!)).toMatchObject({ reason: 'not_found' });

    const row = await service.db.owner.selectFrom('sessions').select('revoked_at').where('id', '=', aSession).executeTakeFirstOrThrow();
    expect(row.revoked_at).toBeNull();
    expect((await a.client.get('/api/profile')).status).toBe(200);

    // "Not yours" and "not there" are the same answer.
    const missing = await b.client.delete(`/api/account/sessions/${randomUUID()}`);
    expect({ status: missing.status, code: missing.body.error.code, message: missing.body.error.message }).toEqual({
      status: res.status,
      code: res.body.error.code,
      message: res.body.error.message,
    });
  });

  it('refuses a session id that is not a UUID before touching anything', async () => {
    const p = await newPatient(service);
    const res = await p.client.delete('/api/account/sessions/1');
    expect(res.status).toBe(400);
  });

  it('needs a signed-in caller', async () => {
    const anon = service.client();
    expect((await anon.get('/api/account/sessions')).status).toBe(401);
    expect((await anon.delete(`/api/account/sessions/${randomUUID()}`)).status).toBe(401);
  });
});

import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type Reply, type TestService } from '../harness';

/**
 * A patient's whole visit, with details distinctive enough that any copy of them in the logs
 * is found: the logs must carry request ids, paths and codes, and nothing about the person.
 */

const tag = randomBytes(3).toString('hex');
const person = {
  givenName: 'Zanzibarina',
  familyName: 'Quillfeatherby',
  newFamilyName: 'Xylophonique',
  dateOfBirth: '1957-03-29',
  email: `zanzibarina.quillfeatherby.${tag}@example.test`,
  nhsNumber: '9434765919',
  password: 'marmalade-octopus-lantern-4721',
  wrongPassword: 'marmalade-octopus-lantern-9999',
};

interface LogLine {
  level: number;
  msg?: string;
  reqId?: string;
  method?: string;
  path?: string;
  status?: number;
  [k: string]: unknown;
}

let service: TestService;
const replies: Reply[] = [];
const secrets: Record<string, string> = {};

beforeAll(async () => {
  service = await startTestService();
  const c = service.client();
  const track = async (p: Promise<Reply>, status: number) => {
    const r = await p;
    expect(r.status, `${r.raw.raw.req.method} ${r.raw.raw.req.url}: ${r.raw.body}`).toBe(status);
    replies.push(r);
    return r;
  };

  const reg = await track(
    c.post('/api/auth/register', {
      givenName: person.givenName,
      familyName: person.familyName,
      dateOfBirth: person.dateOfBirth,
      email: person.email.toUpperCase(),
      password: person.password,
      nhsNumber: '943 476 5919',
    }),
    201,
  );
  secrets.registerCsrf = reg.body.csrfToken;
  secrets.registerCookie = c.cookie!.split('=')[1]!;
  await track(c.get('/api/session'), 200);
  await track(c.post('/api/auth/sign-out'), 200);

  await track(c.post('/api/auth/sign-in', { email: person.email, password: person.wrongPassword }), 401);
  const signIn = await track(c.post('/api/auth/sign-in', { email: person.email, password: person.password }), 200);
  secrets.csrf = signIn.body.csrfToken;
  secrets.cookie = c.cookie!.split('=')[1]!;

  const profile = await track(c.get('/api/profile'), 200);
  expect(profile.body).toMatchObject({ givenName: person.givenName, nhsNumber: person.nhsNumber, dateOfBirth: person.dateOfBirth });
  await track(c.patch('/api/profile', { familyName: person.newFamilyName }), 200);
  await track(c.get('/api/account/sessions'), 200);

  // Mistakes that carry the person's details in the request.
  await track(c.patch('/api/profile', { givenName: person.givenName, familyName: 12345 }), 400);
  await track(
    service.client().post('/api/auth/register', {
      givenName: person.givenName,
      familyName: person.familyName,
      dateOfBirth: '1957-02-30',
      email: person.email,
      password: person.password,
      nhsNumber: person.nhsNumber,
    }),
    400,
  );
  await track(c.request('PATCH', '/api/profile', `{"givenName":"${person.givenName}",`), 400);
  await track(c.delete(`/api/account/sessions/${randomUUID()}`), 404);
  await track(c.get('/api/does-not-exist'), 404);

  // Details in query strings (which the API never asks for, but a caller may send).
  const q = `email=${encodeURIComponent(person.email)}&nhs=${person.nhsNumber}&dob=${person.dateOfBirth}&name=${person.givenName}`;
  await track(c.get(`/api/session?${q}`), 200);
  await track(c.get(`/api/does-not-exist?${q}`), 404);
  await track(service.client().get(`/api/profile?${q}`), 401);
  await track(c.request('PATCH', `/api/profile?${q}`, 'x=1', { 'content-type': 'text/plain' }), 415);

  await track(c.post('/api/auth/sign-out'), 200);
});
afterAll(async () => {
  await service?.close();
});

function logText() {
  return service.logs.join('');
}
function logLines(): LogLine[] {
  return service.logs.flatMap((chunk) => chunk.split('\n').filter(Boolean)).map((l) => JSON.parse(l) as LogLine);
}

describe('logs of a realistic patient visit', () => {
  it('captured something to inspect', () => {
    expect(replies.length).toBeGreaterThan(15);
    expect(logLines().length).toBeGreaterThanOrEqual(replies.length);
    for (const k of ['registerCsrf', 'registerCookie', 'csrf', 'cookie']) expect(secrets[k]?.length ?? 0, k).toBeGreaterThan(20);
  });

  it.each([
    ['email', () => person.email],
    ['email (URL-encoded)', () => encodeURIComponent(person.email)],
    ['email (local part)', () => person.email.split('@')[0]!],
    ['given name', () => person.givenName],
    ['family name', () => person.familyName],
    ['new family name', () => person.newFamilyName],
    ['date of birth', () => person.dateOfBirth],
    ['NHS number', () => person.nhsNumber],
    ['NHS number (spaced)', () => '943 476 5919'],
    ['password', () => person.password],
    ['wrong password', () => person.wrongPassword],
    ['session cookie at registration', () => secrets.registerCookie!],
    ['session cookie after sign-in', () => secrets.cookie!],
    ['CSRF token at registration', () => secrets.registerCsrf!],
    ['CSRF token after sign-in', () => secrets.csrf!],
  ])('never contain the %s', (_label, value) => {
    const v = value();
    expect(v.length).toBeGreaterThan(5);
    // Case-insensitive: a lower-cased email or a capitalised name is still the person.
    expect(logText().toLowerCase()).not.toContain(v.toLowerCase());
  });

  it('log every request with its id, method, path without query string, and status', () => {
    const requestLines = logLines().filter((l) => l.msg === 'request');
    for (const l of requestLines) {
      expect(l.reqId, JSON.stringify(l)).toMatch(/^[0-9a-f-]{36}$/);
      expect(l.method).toMatch(/^[A-Z]+$/);
      expect(typeof l.path).toBe('string');
      expect(l.path).not.toContain('?');
      expect(l.status).toBeTypeOf('number');
    }
    for (const r of replies) {
      const id = r.headers['x-request-id'];
      const [pathPart] = (r.raw.raw.req.url ?? '').split('?');
      const lines = requestLines.filter((l) => l.reqId === id);
      expect(lines, `${id} ${r.raw.raw.req.url}`).toHaveLength(1);
      expect(lines[0]).toMatchObject({ method: r.raw.raw.req.method, status: r.status });
      // A path no route matched may be anything the caller typed: it is logged as '(unmatched)'.
      if (lines[0]!.path === '(unmatched)') expect(r.status).toBe(404);
      else expect(lines[0]!.path).toBe(pathPart);
    }
  });

  it('log a query-string request under its bare path', () => {
    const withQuery = replies.filter((r) => (r.raw.raw.req.url ?? '').includes('?'));
    expect(withQuery.length).toBeGreaterThanOrEqual(4);
    for (const r of withQuery) {
      const line = logLines().find((l) => l.msg === 'request' && l.reqId === r.headers['x-request-id']);
      expect([r.raw.raw.req.url!.split('?')[0], '(unmatched)']).toContain(line?.path);
    }
    expect(logText()).not.toMatch(/email=|nhs=|dob=/);
  });

  it('record no server error during the visit', () => {
    expect(logLines().filter((l) => l.level >= 50)).toEqual([]);
  });
});

describe('the logger itself (the second fence)', () => {
  it('reduces a logged request to id, method and bare path, and redacts known personal fields', async () => {
    const { Writable } = await import('node:stream');
    const { createLogger } = await import('../../src/logger');
    const out: string[] = [];
    const log = createLogger('info', new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }));
    log.info({
      req: { id: 'r1', method: 'GET', url: `/api/x?email=${encodeURIComponent(person.email)}`, headers: { cookie: 'confidant_session=abc' } },
      res: { statusCode: 200, headers: { 'set-cookie': 'confidant_session=abc' } },
      patient: {
        email: person.email,
        givenName: person.givenName,
        familyName: person.familyName,
        dateOfBirth: person.dateOfBirth,
        nhsNumber: person.nhsNumber,
        password: person.password,
        token: 'tok-secret-value',
        csrfToken: 'csrf-secret-value',
      },
      body: { note: person.givenName },
      query: { q: person.nhsNumber },
    });
    const text = out.join('').toLowerCase();
    const line = JSON.parse(out.join(''));
    expect(line.req).toEqual({ id: 'r1', method: 'GET', path: '/api/x' });
    expect(line.res).toEqual({ status: 200 });
    expect(line.patient.email).toBe('[redacted]');
    for (const v of [person.email, person.givenName, person.familyName, person.dateOfBirth, person.nhsNumber, person.password, 'tok-secret-value', 'csrf-secret-value', 'confidant_session=abc']) {
      expect(text).not.toContain(v.toLowerCase());
    }
  });
});

describe('paths no route matched', () => {
  it('are logged as (unmatched), never as typed', async () => {
    const { startTestService } = await import('../harness');
    const s = await startTestService();
    try {
      const res = await s.client().get('/api/patients/someone.private@example.test/records');
      expect(res.status).toBe(404);
      const text = s.logs.join('');
      expect(text).not.toContain('someone.private');
      expect(text).toContain('"path":"(unmatched)"');
    } finally {
      await s.close();
    }
  });
});

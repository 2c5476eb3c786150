import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AnyRoute } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
import { createStaffAccount } from '../../src/modules/identity/staff-accounts';
import { newTotpSecret } from '../../src/modules/identity/totp';
import { dataCounts, GOOD_PASSWORD, newPatient, newStaff, uniqueEmail } from '../fixtures';
import { startTestService, type Reply, type TestClient, type TestService } from '../harness';

/**
 * Hostile and clumsy input against every route that reads a body or path parameters, sent
 * by a caller who is allowed to reach validation. Nothing may answer 500, leak internals,
 * or write a row.
 */

/** A body each route accepts; checked against the route's own schema below, so it cannot rot. */
const VALID_BODIES: Record<string, unknown> = {
  'POST /api/auth/register': {
    givenName: 'Valid',
    familyName: 'Body',
    dateOfBirth: '1990-01-01',
    email: 'valid.body@example.test',
    password: GOOD_PASSWORD,
    nhsNumber: '9434765919',
  },
  'POST /api/auth/sign-in': { email: 'valid.body@example.test', password: GOOD_PASSWORD },
  'POST /api/auth/mfa/verify': { code: '123456' },
  'POST /api/auth/mfa/enrol/confirm': { code: '123456' },
  'POST /api/account/password': { currentPassword: GOOD_PASSWORD, newPassword: 'another-long-phrase-77' },
  'PATCH /api/profile': { givenName: 'Valid', familyName: 'Body' },
  'POST /api/audit/events/search': {
    patientId: randomUUID(),
    actorId: randomUUID(),
    action: 'profile.read',
    outcome: 'success',
    beforeSeq: 10,
    limit: 5,
  },
  'POST /api/appointments': { clinicianId: randomUUID(), startsAt: '2030-01-07T09:00:00Z', mode: 'video', reason: 'Cough' },
  'POST /api/appointments/:appointmentId/reschedule': { startsAt: '2030-01-07T09:10:00Z', clinicianId: randomUUID(), mode: 'audio' },
  'POST /api/appointments/:appointmentId/outcome': { outcome: 'completed' },
  'PUT /api/clinicians/:clinicianId/availability': { rules: [{ weekday: 1, start: '09:00', end: '12:00' }] },
  'POST /api/clinicians/:clinicianId/availability/exceptions': {
    startsAt: '2030-01-07T13:00:00Z',
    endsAt: '2030-01-07T17:00:00Z',
    reason: 'leave',
    note: 'Annual leave',
  },
  'POST /api/consultations/:consultationId/mode-requests': { mode: 'video' },
  'POST /api/consultations/:consultationId/mode-requests/:requestId/answer': { accept: true },
  'POST /api/consultations/:consultationId/consent-requests': { media: 'audio' },
  'POST /api/consultations/:consultationId/consents': { media: 'audio', decision: 'granted' },
  'PUT /api/consultations/:consultationId/notes': { body: 'Reviewed; no concerns.' },
  'PUT /api/features/:name': { enabled: false, reason: 'Checking the switch' },
};

const keyOf = (r: AnyRoute) => `${r.method} ${r.url}`;
const bodyRoutes = allRoutes.filter((r) => r.body && !r.rawBody);
const rawBodyRoutes = allRoutes.filter((r) => r.rawBody);
const paramRoutes = allRoutes.filter((r) => r.params);

type JsonSchema = { type?: string; properties?: Record<string, JsonSchema>; maxLength?: number; format?: string; pattern?: string; enum?: unknown[] };
function fieldsOf(r: AnyRoute): [string, JsonSchema][] {
  const schema = z.toJSONSchema(r.body!, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return Object.entries(schema.properties ?? {});
}

function wrongValuesFor(field: JsonSchema): unknown[] {
  if (field.type === 'integer' || field.type === 'number') return ['not-a-number', { n: 1 }, null];
  if (field.type === 'string') return [12345, true, { s: 'x' }, ['x'], null];
  return [{ unexpected: true }, null];
}

/** Real URL for a route: every path parameter filled with a (syntactically valid) UUID unless given. */
function urlFor(r: AnyRoute, value?: string): string {
  // Chunk numbers are integers, everything else a UUID.
  return r.url.replace(/:([A-Za-z]+)/g, (_m, name: string) => value ?? (name === 'seq' ? '0' : randomUUID()));
}

// Internals that must never reach a caller: stack frames, source paths, SQL, driver and framework names.
const LEAK =
  /\bat \S+ \(|\.[cm]?[jt]s:\d+|node_modules|\bstack\b|\bselect\b.+\bfrom\b|\binsert into\b|\bupdate \S+ set\b|\bdelete from\b|syntax error|relation "|violates|postgres|pglite|kysely|zod|FST_|TypeError|ReferenceError/i;

function expectErrorBody(res: Reply, status: number | number[], code?: string | string[]) {
  const label = `${res.raw.raw.req.method} ${res.raw.raw.req.url} → ${res.status} ${res.raw.body.slice(0, 300)}`;
  expect(res.status, label).not.toBeGreaterThanOrEqual(500);
  if (Array.isArray(status)) expect(status, label).toContain(res.status);
  else expect(res.status, label).toBe(status);
  expect(res.headers['content-type'], label).toMatch(/^application\/json/);
  expect(Object.keys(res.body), label).toEqual(['error']);
  const e = res.body.error;
  for (const k of Object.keys(e)) expect(['code', 'message', 'requestId', 'issues', 'details'], label).toContain(k);
  expect(typeof e.code, label).toBe('string');
  expect(typeof e.message, label).toBe('string');
  expect(e.message.length, label).toBeGreaterThan(0);
  expect(e.requestId, label).toBe(res.headers['x-request-id']);
  if (e.issues !== undefined) {
    expect(Array.isArray(e.issues), label).toBe(true);
    for (const i of e.issues) expect(Object.keys(i).sort(), label).toEqual(['message', 'path']);
  }
  expect(res.raw.body, label).not.toMatch(LEAK);
  if (code !== undefined) {
    if (Array.isArray(code)) expect(code, label).toContain(e.code);
    else expect(e.code, label).toBe(code);
  }
  expect(res.headers['cache-control'], label).toBe('no-store');
}

function expectIssueAt(res: Reply, path: string) {
  expectErrorBody(res, 400, 'validation_failed');
  const paths = (res.body.error.issues as { path: string }[]).map((i) => i.path);
  expect(paths, `${res.raw.raw.req.url}: ${res.raw.body}`).toContain(path);
}

/** Row counts of every data table except the audit log (denials are audited, on purpose). */
async function rowCounts(service: TestService) {
  const { audit_events: _audit, ...rest } = await dataCounts(service);
  return rest;
}

let service: TestService;
/** One signed-in caller per kind of principal, with the permissions GET /api/session reports. */
const callers: { name: string; client: TestClient; permissions: string[] }[] = [];

async function pendingMfaStaff(): Promise<TestClient> {
  const email = uniqueEmail('pending');
  await service.deps.scopes.system('test fixture', { requestId: 'test', clientIp: null, userAgent: null }, (scope) =>
    createStaffAccount(scope, { email, displayName: 'Pending Dpo', role: 'dpo', password: GOOD_PASSWORD, mfa: { secret: newTotpSecret(), box: service.deps.identity.mfaSecrets } }),
  );
  const client = service.client();
  const res = await client.post('/api/auth/sign-in', { email, password: GOOD_PASSWORD });
  expect(res.body.stage).toBe('mfa');
  return client;
}

beforeAll(async () => {
  service = await startTestService();
  const [patient, dpo, pending, clinician, admin] = await Promise.all([
    newPatient(service),
    newStaff(service, 'dpo'),
    pendingMfaStaff(),
    newStaff(service, 'clinician'),
    newStaff(service, 'admin'),
  ]);
  for (const [name, client] of [
    ['patient', patient.client],
    ['dpo', dpo.client],
    ['pending-mfa', pending],
    ['clinician', clinician.client],
    ['admin', admin.client],
  ] as const) {
    const me = await client.get('/api/session');
    expect(me.body.authenticated).toBe(true);
    callers.push({ name, client, permissions: me.body.permissions });
  }
});
afterAll(async () => {
  await service?.close();
});

/** Anonymous for public routes; otherwise the first caller holding the route's permission. */
function callerFor(r: AnyRoute): TestClient {
  if ('public' in r.access) return service.client();
  const permission = r.access.permission;
  const c = callers.find((x) => x.permissions.includes(permission));
  if (!c) throw new Error(`no test principal holds ${permission} (needed by ${keyOf(r)}); add one to this suite`);
  return c.client;
}

it('covers the routes it should', () => {
  // A route with a body but no valid example here would silently get weaker checks.
  expect(bodyRoutes.map(keyOf).sort()).toEqual(Object.keys(VALID_BODIES).sort());
  for (const r of bodyRoutes) {
    const parsed = r.body!.safeParse(VALID_BODIES[keyOf(r)]);
    expect(parsed.success, `${keyOf(r)}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
  }
  expect(paramRoutes.length).toBeGreaterThan(0);
});

describe.each(bodyRoutes.map((r) => [keyOf(r), r] as const))('%s', (_key, route) => {
  const valid = VALID_BODIES[keyOf(route)] as Record<string, unknown>;
  const send = (payload: string, headers: Record<string, string> = {}) =>
    callerFor(route).request(route.method, urlFor(route), payload, headers);

  let before: Record<string, number>;
  beforeAll(async () => {
    before = await rowCounts(service);
  });
  afterAll(async () => {
    // Every call in this block was refused before a service function ran: nothing was written.
    expect(await rowCounts(service)).toEqual(before);
  });

  it('answers malformed JSON with 400 invalid_json', async () => {
    for (const payload of ['{"a":', '{bad json}', "{'single': 'quotes'}", '{"a":1,}', '\u0000']) {
      expectErrorBody(await send(payload), 400, 'invalid_json');
    }
  });

  it('answers a JSON value that is not an object with 400 validation_failed', async () => {
    for (const payload of ['[]', JSON.stringify([valid]), '"a string"', '42', 'true', 'null']) {
      expectErrorBody(await send(payload), 400, 'validation_failed');
    }
  });

  it('names the field that has the wrong type', async () => {
    const fields = fieldsOf(route);
    expect(fields.length).toBeGreaterThan(0);
    for (const [name, field] of fields) {
      for (const wrong of wrongValuesFor(field)) {
        expectIssueAt(await send(JSON.stringify({ ...valid, [name]: wrong })), name);
      }
    }
  });

  it('refuses an unknown field and names it', async () => {
    for (const extra of ['isAdmin', 'patientId_override', 'constructor']) {
      if (extra in valid) continue;
      const res = await send(JSON.stringify({ ...valid, [extra]: 'x' }));
      expectErrorBody(res, 400, 'validation_failed');
      expect(res.body.error.issues.map((i: { message: string }) => i.message).join(' ')).toContain(extra);
    }
  });

  it('refuses a 1 MB body with 413 payload_too_large', async () => {
    const [firstField] = fieldsOf(route)[0]!;
    const res = await send(JSON.stringify({ ...valid, [firstField]: 'Q'.repeat(1024 * 1024) }));
    expectErrorBody(res, 413, 'payload_too_large');
  });

  it('refuses bodies that are not JSON with 415 unsupported_media_type', async () => {
    const asText = await send(JSON.stringify(valid), { 'content-type': 'text/plain' });
    expectErrorBody(asText, 415, 'unsupported_media_type');
    const asForm = await send('givenName=a&familyName=b', { 'content-type': 'application/x-www-form-urlencoded' });
    expectErrorBody(asForm, 415, 'unsupported_media_type');
    const asMultipart = await send('--x\r\n\r\n--x--', { 'content-type': 'multipart/form-data; boundary=x' });
    expectErrorBody(asMultipart, 415, 'unsupported_media_type');
  });

  it('refuses a 10 KB string in any text field without echoing it', async () => {
    const fields = fieldsOf(route).filter(([, f]) => f.type === 'string');
    // Free text must be bounded; formatted strings (dates, ids, times) are bounded by their format.
    const freeText = fields.filter(([, f]) => !f.format && !f.pattern && !f.enum);
    for (const [name, f] of freeText) expect(typeof f.maxLength, `${name} has no maxLength`).toBe('number');
    for (const [name, f] of fields) {
      // 10 KB, or just over the limit where a field may legitimately be longer (clinical notes).
      const res = await send(JSON.stringify({ ...valid, [name]: 'Q'.repeat(Math.max(10 * 1024, (f.maxLength ?? 0) + 1)) }));
      expectIssueAt(res, name);
      expect(res.raw.body).not.toContain('QQQQQQQQ');
    }
  });
});

describe.each(paramRoutes.map((r) => [keyOf(r), r] as const))('%s path parameters', (_key, route) => {
  let before: Record<string, number>;
  beforeAll(async () => {
    before = await rowCounts(service);
  });
  afterAll(async () => {
    expect(await rowCounts(service)).toEqual(before);
  });

  it('answers a parameter that is not a UUID with 400 or 404, never 500', async () => {
    const client = callerFor(route);
    for (const bad of [
      'not-a-uuid',
      '12345',
      encodeURIComponent("' or '1'='1"),
      encodeURIComponent('1; drop table accounts; --'),
      '00000000-0000-0000-0000-00000000000g',
      `${randomUUID()}x`,
      'a'.repeat(200),
      '%00',
      '..%2F..%2Fetc%2Fpasswd',
    ]) {
      expectErrorBody(await client.request(route.method, urlFor(route, bad)), [400, 404]);
    }
  });

  it('answers a well-formed UUID that names nothing with 404 not_found', async () => {
    // With a valid body where the route takes one, so that the lookup (not validation) answers.
    const body = route.rawBody ? Buffer.from('a chunk') : VALID_BODIES[keyOf(route)];
    expectErrorBody(await callerFor(route).request(route.method, urlFor(route), body), 404, 'not_found');
  });
});

describe.each(rawBodyRoutes.map((r) => [keyOf(r), r] as const))('%s (raw bytes)', (_key, route) => {
  let before: Record<string, number>;
  beforeAll(async () => {
    before = await rowCounts(service);
  });
  afterAll(async () => {
    expect(await rowCounts(service)).toEqual(before);
  });
  const send = (payload: string | Buffer, headers: Record<string, string> = {}, url = urlFor(route)) =>
    callerFor(route).request(route.method, url, payload, headers);

  it('refuses JSON, text and forms with 415 unsupported_media_type', async () => {
    for (const type of ['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      expectErrorBody(await send('{"bytes":"AAAA"}', { 'content-type': type }), 415, 'unsupported_media_type');
    }
  });

  it('refuses an empty body and one over the configured limit, without reading it all', async () => {
    expectErrorBody(await send(Buffer.alloc(0)), [400, 404]);
    const limit = service.config.recordings.maxChunkBytes;
    expectErrorBody(await send(Buffer.alloc(limit + 1)), 413, 'payload_too_large');
  });

  it('answers a chunk number that is not a small non-negative integer with 400', async () => {
    for (const seq of ['-1', '1.5', 'x', '99999999999', '1e3', '0x10', '007']) {
      const url = route.url.replace(/:([A-Za-z]+)/g, (_m, name: string) => (name === 'seq' ? seq : randomUUID()));
      expectErrorBody(await send(Buffer.from('bytes'), {}, url), 400, 'validation_failed');
    }
  });
});

describe('paths and methods the API does not have', () => {
  it('answers an unknown /api path with 404 not_found JSON', async () => {
    const client = callers[0]!.client;
    for (const [method, url] of [
      ['GET', '/api'],
      ['GET', '/api/'],
      ['GET', '/api/does-not-exist'],
      ['GET', '/api/profile/extra'],
      ['GET', `/api/account/sessions/${randomUUID()}`],
      ['POST', '/api/does-not-exist'],
      ['DELETE', '/api/does-not-exist'],
      ['GET', '/api/does-not-exist?email=someone%40example.test'],
    ] as const) {
      expectErrorBody(await client.request(method, url), 404, 'not_found');
    }
  });

  it('answers a wrong method on a known path with 404 or 405 JSON', async () => {
    const before = await rowCounts(service);
    const methodsByUrl = new Map<string, Set<string>>();
    for (const r of allRoutes) (methodsByUrl.get(r.url) ?? methodsByUrl.set(r.url, new Set()).get(r.url)!).add(r.method);
    let tried = 0;
    for (const [url, methods] of methodsByUrl) {
      for (const m of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
        if (methods.has(m)) continue;
        const res = await callers[0]!.client.request(m, url.replace(/:([A-Za-z]+)/g, () => randomUUID()));
        expectErrorBody(res, [404, 405], ['not_found', 'method_not_allowed']);
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(allRoutes.length);
    expect(await rowCounts(service)).toEqual(before);
  });

  it('answers a URL the router cannot decode with 400 JSON that does not echo it', async () => {
    const res = await callers[0]!.client.get('/api/%E0%A4%A-zanzibarina');
    expectErrorBody(res, 400, 'bad_request');
    expect(res.raw.body).not.toContain('zanzibarina');
  });
});

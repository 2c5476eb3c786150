import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildApp } from '../../src/http/app';
import { defineRoute, patientIdsOf } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
import type { TestService } from '../harness';
import { detectNow, latestAuditEvents, newPatient, newStaff, restoreKilledFeatures, type PatientHandle, type StaffHandle } from '../fixtures';
import { book, newGp, startConsultationService } from '../consultations/support';

// A route with the 2020 bug in it: it hands back a patient id it was given, not one it was allowed.
let victim: PatientHandle;
const leakyRoute = defineRoute({
  method: 'GET',
  url: '/api/test/leaky-recording',
  summary: 'test only',
  tags: ['test'],
  access: { permission: 'session.read' },
  feature: 'replay_list',
  response: z.object({ patientId: z.string(), title: z.string() }),
  egress: (out) => [out.patientId],
  handler: async () => ({ patientId: victim.id, title: 'someone else’s consultation' }),
});
const ownRoute = defineRoute({
  ...leakyRoute,
  url: '/api/test/own-recording',
  handler: async ({ principal }) => ({ patientId: 'accountId' in principal ? principal.accountId : '', title: 'mine' }),
});

// A query bug of the subtler kind: notes about a patient the caller does treat, but written in a
// colleague's consultation. The patient check alone passes; the clinician named on the object does not.
let shared: { patient: PatientHandle; gp: StaffHandle };
let colleagueId = '';
const notesRoute = (url: string, author: () => string) =>
  defineRoute({
    method: 'GET',
    url,
    summary: 'test only',
    tags: ['test'],
    access: { permission: 'session.read' },
    response: z.object({ body: z.string() }),
    feature: 'replay_list',
    egress: (n) => patientIdsOf([n]),
    handler: async () => ({ patientId: shared.patient.id, clinicianId: author(), body: 'Notes about a shared patient' }),
  });
const colleaguesNotes = notesRoute('/api/test/colleagues-notes', () => colleagueId);
const ownNotes = notesRoute('/api/test/own-notes', () => shared.gp.id);
// Patient data nested inside an object that is the caller's own.
const nestedRoute = defineRoute({
  ...leakyRoute,
  url: '/api/test/nested',
  response: z.object({ patientId: z.string(), title: z.string() }),
  feature: 'replay_list',
  egress: (out) => patientIdsOf([out]),
  handler: async ({ principal }) => ({
    patientId: 'accountId' in principal ? principal.accountId : '',
    title: 'mine',
    related: [{ consultation: { patientId: victim.id } }],
  }),
});
// An object the check cannot read: no patientId at all.
const ownerless = defineRoute({
  method: 'GET',
  url: '/api/test/ownerless',
  summary: 'test only',
  tags: ['test'],
  access: { permission: 'session.read' },
  response: z.object({ title: z.string() }),
  feature: 'replay_list',
  egress: (out) => patientIdsOf([out]),
  handler: async () => ({ title: 'whose?' }),
});

let service: TestService;
let app: Awaited<ReturnType<typeof buildApp>>['app'];
beforeAll(async () => {
  service = await startConsultationService();
  victim = await newPatient(service);
  // A patient with an appointment with this GP: the patient check alone lets their data through.
  shared = { patient: await newPatient(service), gp: await newGp(service) };
  await book(service, shared.patient, shared.gp);
  colleagueId = (await newStaff(service, 'clinician')).id;
  app = (await buildApp(service.deps, { routes: [...allRoutes, leakyRoute, ownRoute, colleaguesNotes, ownNotes, nestedRoute, ownerless] })).app;
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await service?.close();
});

// Each blocked response below is a containment signal: the breach guard switches the route's
// feature off (test/guard/detection.test.ts tests that). Switched back on after each test.
afterEach(async () => {
  await restoreKilledFeatures(service);
});

async function call(cookie: string | undefined, url: string) {
  return app.inject({ method: 'GET', url, headers: cookie ? { cookie } : {} });
}

describe('egress check', () => {
  it('lets a patient receive their own object', async () => {
    const me = await newPatient(service);
    const res = await call(me.client.cookie, '/api/test/own-recording');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ patientId: me.id, title: 'mine' });
  });

  it("blocks another patient's object: 500 without the data, audited, alert logged", async () => {
    const intruder = await newPatient(service);
    const res = await call(intruder.client.cookie, '/api/test/leaky-recording');
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain(victim.id);
    expect(res.body).not.toContain('consultation');
    expect(res.json().error.code).toBe('egress_denied');
    // Detection may have written its own events since: the block is found by its request.
    const event = (await latestAuditEvents(service, 10)).find((e) => e.request_id === res.headers['x-request-id']);
    expect(event).toMatchObject({ action: 'egress.blocked', outcome: 'failure', actor_id: intruder.id });
    expect(JSON.parse(event!.details!)).toMatchObject({ route: '/api/test/leaky-recording', feature: 'replay_list', foreignObjects: 1 });
    expect(service.logs.some((l) => l.includes('"alert":"egress_blocked"'))).toBe(true);
    // And contained: the route's feature is off.
    await detectNow(service);
    await expect.poll(() => service.deps.features.isEnabledNow('replay_list'), { timeout: 1_000, interval: 5 }).toBe(false);
  });

  it('blocks a clinician with no relationship to the patient (checked under their own RLS)', async () => {
    const clinician = await newStaff(service, 'clinician');
    const res = await call(clinician.client.cookie, '/api/test/leaky-recording');
    expect(res.statusCode).toBe(500);
    expect(res.json().error.code).toBe('egress_denied');
  });

  it("blocks a colleague's notes about a patient the clinician shares with them; lets the clinician's own through", async () => {
    const mine = await call(shared.gp.client.cookie, '/api/test/own-notes');
    expect(mine.statusCode).toBe(200);
    const theirs = await call(shared.gp.client.cookie, '/api/test/colleagues-notes');
    expect(theirs.statusCode).toBe(500);
    expect(theirs.body).not.toContain('Notes about');
    expect(theirs.json().error.code).toBe('egress_denied');
    const event = (await latestAuditEvents(service, 10)).find((e) => e.request_id === theirs.headers['x-request-id']);
    expect(event).toMatchObject({ action: 'egress.blocked', outcome: 'failure', actor_id: shared.gp.id });
  });

  it('looks inside objects: patient data nested in the caller\'s own object is checked too', async () => {
    const me = await newPatient(service);
    const res = await call(me.client.cookie, '/api/test/nested');
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain(victim.id);
    expect(res.json().error.code).toBe('egress_denied');
  });

  it('fails closed on an object without its patientId', async () => {
    const me = await newPatient(service);
    const res = await call(me.client.cookie, '/api/test/ownerless');
    expect(res.statusCode).toBe(500);
    expect(res.json().error.code).toBe('egress_denied');
  });
});

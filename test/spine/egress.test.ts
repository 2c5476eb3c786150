import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildApp } from '../../src/http/app';
import { defineRoute } from '../../src/http/define-route';
import { allRoutes } from '../../src/http/routes';
import { startTestService, type TestService } from '../harness';
import { latestAuditEvents, newPatient, newStaff, type PatientHandle } from '../fixtures';

// A route with the 2020 bug in it: it hands back a patient id it was given, not one it was allowed.
let victim: PatientHandle;
const leakyRoute = defineRoute({
  method: 'GET',
  url: '/api/test/leaky-recording',
  summary: 'test only',
  tags: ['test'],
  access: { permission: 'session.read' },
  response: z.object({ patientId: z.string(), title: z.string() }),
  egress: (out) => [out.patientId],
  handler: async () => ({ patientId: victim.id, title: 'someone else’s consultation' }),
});
const ownRoute = defineRoute({
  ...leakyRoute,
  url: '/api/test/own-recording',
  handler: async ({ principal }) => ({ patientId: 'accountId' in principal ? principal.accountId : '', title: 'mine' }),
});

let service: TestService;
let app: Awaited<ReturnType<typeof buildApp>>['app'];
beforeAll(async () => {
  service = await startTestService();
  victim = await newPatient(service);
  app = (await buildApp(service.deps, { routes: [...allRoutes, leakyRoute, ownRoute] })).app;
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await service?.close();
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
    const [event] = await latestAuditEvents(service, 1);
    expect(event).toMatchObject({ action: 'egress.blocked', outcome: 'failure', actor_id: intruder.id });
    expect(service.logs.some((l) => l.includes('"alert":"egress_blocked"'))).toBe(true);
  });

  it('blocks a clinician with no relationship to the patient (checked under their own RLS)', async () => {
    const clinician = await newStaff(service, 'clinician');
    const res = await call(clinician.client.cookie, '/api/test/leaky-recording');
    expect(res.statusCode).toBe(500);
    expect(res.json().error.code).toBe('egress_denied');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasPermission } from '../../src/access/permissions';
import type { Principal } from '../../src/access/principal';
import { allRoutes } from '../../src/http/routes';
import { startTestService, type TestClient, type TestService } from '../harness';
import { dataCounts, GOOD_PASSWORD, latestAuditEvents, newPatient, newStaff, uniqueEmail, type PatientHandle } from '../fixtures';

/**
 * Every route × every kind of caller. A caller without the permission gets 401 (anonymous)
 * or 404 (signed in), and the only row written anywhere is one audit event saying "denied".
 * A new route fails this test until it is given a sample call here.
 */
const SAMPLE: Record<string, { body?: unknown | ((ctx: Ctx) => unknown); path?: (ctx: Ctx) => string }> = {
  'POST /api/auth/mfa/verify': { body: { code: '123456' } },
  'POST /api/auth/mfa/enrol': {},
  'POST /api/auth/mfa/enrol/confirm': { body: { code: '123456' } },
  'POST /api/account/password': { body: { currentPassword: GOOD_PASSWORD, newPassword: 'another-quiet-phrase-33' } },
  'GET /api/account/sessions': {},
  'DELETE /api/account/sessions/:sessionId': { path: (c) => `/api/account/sessions/${c.ownerSessionId}` },
  'GET /api/profile': {},
  'PATCH /api/profile': { body: { givenName: 'Renamed' } },
  'GET /api/staff': {},
  'POST /api/audit/events/search': { body: { limit: 5 } },
  'POST /api/audit/verify': {},
  'GET /api/clinicians': {},
  'GET /api/slots': {},
  'POST /api/appointments': { body: (c: Ctx) => ({ clinicianId: c.clinicianId, startsAt: c.freeSlot, mode: 'audio', reason: 'Sore throat' }) },
  'GET /api/appointments': {},
  'GET /api/appointments/:appointmentId': { path: (c) => `/api/appointments/${c.appointmentId}` },
  'POST /api/appointments/:appointmentId/cancel': { path: (c) => `/api/appointments/${c.appointmentId}/cancel` },
  'POST /api/appointments/:appointmentId/reschedule': {
    path: (c) => `/api/appointments/${c.appointmentId}/reschedule`,
    body: (c: Ctx) => ({ startsAt: c.freeSlot }),
  },
  'POST /api/appointments/:appointmentId/outcome': { path: (c) => `/api/appointments/${c.appointmentId}/outcome`, body: { outcome: 'no_show' } },
  'GET /api/schedule': {},
  'GET /api/clinicians/:clinicianId/availability': { path: (c) => `/api/clinicians/${c.clinicianId}/availability` },
  'PUT /api/clinicians/:clinicianId/availability': { path: (c) => `/api/clinicians/${c.clinicianId}/availability`, body: { rules: [] } },
  'POST /api/clinicians/:clinicianId/availability/exceptions': {
    path: (c) => `/api/clinicians/${c.clinicianId}/availability/exceptions`,
    body: { startsAt: '2031-01-01T09:00:00Z', endsAt: '2031-01-01T10:00:00Z', reason: 'leave' },
  },
  'DELETE /api/clinicians/:clinicianId/availability/exceptions/:exceptionId': {
    path: (c) => `/api/clinicians/${c.clinicianId}/availability/exceptions/${c.exceptionId}`,
  },
  'GET /api/notifications': {},
  // Consultations and recordings: refused on the permission, before any lookup (their own/other
  // mirror tests are in test/consultations/consultation-isolation.test.ts).
  'POST /api/appointments/:appointmentId/consultation': { path: (c) => `/api/appointments/${c.appointmentId}/consultation` },
  'GET /api/consultations/:consultationId': {},
  'GET /api/consultations/:consultationId/signal': {},
  'GET /api/waiting-room': {},
  'POST /api/consultations/:consultationId/start': {},
  'POST /api/consultations/:consultationId/end': {},
  'POST /api/consultations/:consultationId/mode-requests': { body: { mode: 'video' } },
  'POST /api/consultations/:consultationId/mode-requests/:requestId/answer': { body: { accept: true } },
  'POST /api/consultations/:consultationId/consent-requests': { body: { media: 'audio' } },
  'POST /api/consultations/:consultationId/consents': { body: { media: 'audio', decision: 'granted' } },
  'GET /api/consultations/:consultationId/notes': {},
  'PUT /api/consultations/:consultationId/notes': { body: { body: 'Notes' } },
  'POST /api/consultations/:consultationId/recordings': {},
  'PUT /api/recordings/:recordingId/chunks/:seq': { body: Buffer.from('a chunk') },
  'GET /api/recordings/:recordingId/upload': {},
  'POST /api/recordings/:recordingId/finish': {},
  'GET /api/replays': {},
  'GET /api/recordings/:recordingId': {},
  'GET /api/recordings/:recordingId/media': {},
  'GET /api/features': {},
  'PUT /api/features/:name': { path: () => '/api/features/booking', body: { enabled: false, reason: 'access matrix' } },
  'GET /api/guard/alerts': {},
  'GET /api/guard/alerts/stream': {},
  'POST /api/guard/alerts/:id/acknowledge': { path: () => '/api/guard/alerts/7d1b2c3a-0000-4000-8000-000000000001/acknowledge' },
  'GET /api/guard/drill': {},
  'POST /api/notifications/:notificationId/read': { path: (c) => `/api/notifications/${c.notificationId}/read` },
};

interface Ctx {
  ownerSessionId: string;
  clinicianId: string;
  appointmentId: string;
  freeSlot: string;
  exceptionId: string;
  notificationId: string;
}

type CallerKind = 'anonymous' | 'patient' | 'clinician' | 'dpo' | 'admin' | 'pending-mfa';
const PRINCIPAL_OF: Record<CallerKind, Principal> = {
  anonymous: { kind: 'anonymous' },
  patient: { kind: 'patient', accountId: 'x', sessionId: 'x' },
  clinician: { kind: 'clinician', accountId: 'x', sessionId: 'x' },
  dpo: { kind: 'staff', role: 'dpo', accountId: 'x', sessionId: 'x' },
  admin: { kind: 'staff', role: 'admin', accountId: 'x', sessionId: 'x' },
  'pending-mfa': { kind: 'pending', stage: 'mfa', accountKind: 'clinician', role: null, accountId: 'x', sessionId: 'x' },
};

let service: TestService;
let callers: Record<CallerKind, () => Promise<TestClient>>;
let owner: PatientHandle;
let ctx: Ctx;

beforeAll(async () => {
  service = await startTestService();
  owner = await newPatient(service);
  const sessions = await owner.client.get('/api/account/sessions');
  // The owner's own objects in every area: a clinician's schedule, a booking, an exception, a notification.
  const gp = await newStaff(service, 'clinician');
  await gp.client.request('PUT', `/api/clinicians/${gp.id}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  const exception = await gp.client.post(`/api/clinicians/${gp.id}/availability/exceptions`, {
    startsAt: '2032-01-01T09:00:00Z',
    endsAt: '2032-01-01T10:00:00Z',
    reason: 'training',
  });
  const slots = (await owner.client.get(`/api/slots?clinicianId=${gp.id}&limit=5`)).body.slots;
  const booked = await owner.client.post('/api/appointments', { clinicianId: gp.id, startsAt: slots[0].startsAt, mode: 'video', reason: 'Check-up' });
  const notes = await owner.client.get('/api/notifications');
  ctx = {
    ownerSessionId: sessions.body.sessions[0].id,
    clinicianId: gp.id,
    appointmentId: booked.body.id,
    freeSlot: slots[3].startsAt,
    exceptionId: exception.body.exceptions[0].id,
    notificationId: notes.body.notifications[0].id,
  };
  callers = {
    anonymous: async () => service.client(),
    patient: async () => (await newPatient(service)).client,
    clinician: async () => (await newStaff(service, 'clinician')).client,
    dpo: async () => (await newStaff(service, 'dpo')).client,
    admin: async () => (await newStaff(service, 'admin')).client,
    'pending-mfa': async () => {
      const s = await newStaff(service, 'clinician');
      const c = service.client();
      await c.post('/api/auth/sign-in', { email: s.email, password: s.password });
      return c;
    },
  };
});
afterAll(async () => {
  await service?.close();
});

const guarded = allRoutes.filter((r) => 'permission' in r.access);

describe('access matrix', () => {
  it('has a sample call for every guarded route', () => {
    expect(guarded.map((r) => `${r.method} ${r.url}`).filter((k) => !(k in SAMPLE))).toEqual([]);
  });

  for (const route of guarded) {
    const key = `${route.method} ${route.url}`;
    const permission = (route.access as { permission: Parameters<typeof hasPermission>[1] }).permission;
    for (const kind of Object.keys(PRINCIPAL_OF) as CallerKind[]) {
      if (hasPermission(PRINCIPAL_OF[kind], permission)) continue;
      const expected = kind === 'anonymous' ? 401 : kind === 'pending-mfa' ? 401 : 404;
      it(`${key} as ${kind} → ${expected}, nothing written but a denial`, async () => {
        const client = await callers[kind]();
        const sample = SAMPLE[key] ?? {};
        const url = sample.path ? sample.path(ctx) : route.url;
        const before = await dataCounts(service);
        const body = typeof sample.body === 'function' ? (sample.body as (c: Ctx) => unknown)(ctx) : sample.body;
        const res = await client.request(route.method, url, body);
        expect(res.status, JSON.stringify(res.body)).toBe(expected);
        expect(JSON.stringify(res.body)).not.toContain(owner.email);
        const after = await dataCounts(service);
        expect({ ...after, audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
        expect(after.audit_events - before.audit_events).toBe(1);
        const [event] = await latestAuditEvents(service, 1);
        expect(event).toMatchObject({ outcome: 'denied', action: permission, request_id: res.headers['x-request-id'] });
      });
    }
  }

  it("answers 404 for another patient's session id, exactly as for a missing one, and writes only the denial", async () => {
    const other = await newPatient(service);
    const before = await dataCounts(service);
    const theirs = await other.client.delete(`/api/account/sessions/${ctx.ownerSessionId}`);
    const missing = await other.client.delete('/api/account/sessions/7d1b2c3a-0000-4000-8000-000000000000');
    expect(theirs.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(theirs.body.error.code).toBe(missing.body.error.code);
    expect(theirs.body.error.message).toBe(missing.body.error.message);
    const after = await dataCounts(service);
    expect({ ...after, audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
    expect(after.audit_events - before.audit_events).toBe(2);
    expect((await owner.client.get('/api/profile')).status).toBe(200);
  });

  it('lets the owner do what the others were refused', async () => {
    const me = await newPatient(service, { email: uniqueEmail('owner') });
    expect((await me.client.get('/api/profile')).status).toBe(200);
    expect((await me.client.patch('/api/profile', { familyName: 'Owner' })).body.familyName).toBe('Owner');
    const sessions = await me.client.get('/api/account/sessions');
    expect(sessions.body.sessions).toHaveLength(1);
    expect(sessions.body.sessions[0].current).toBe(true);
  });
});

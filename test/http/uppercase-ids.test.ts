import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allRoutes } from '../../src/http/routes';
import { newPatient } from '../fixtures';
import type { Reply, TestService } from '../harness';
import { book, CLIP, chunksOf, finalised, newGp, startConsultationService } from '../consultations/support';

// A UUID is the same id in upper or lower case (the API description's pattern allows both). Every
// route that takes one is called here, by its rightful caller, with the id in upper case: it must
// answer as it would with the id in lower case, and answer with ids in lower case. It once answered
// a chunk upload with 500 (the recording's blob name is built from the id) and left the recording
// `finalising` for minutes.

const UP = (id: string) => id.toUpperCase();
const seen = new Set<string>();

let service: TestService;

/** Calls one route (named by its pattern, for the coverage check) with the path given. */
async function call(route: string, run: () => Promise<Reply>, status: number): Promise<Reply> {
  seen.add(route);
  const res = await run();
  expect(res.status, `${route}: ${JSON.stringify(res.body)}`).toBe(status);
  expect(JSON.stringify(res.body ?? '')).not.toMatch(/[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}/);
  return res;
}

beforeAll(async () => {
  service = await startConsultationService();
});
afterAll(async () => {
  await service?.close();
});

describe('ids in upper case', () => {
  it('are the same ids on every route that takes one', async () => {
    const gp = await newGp(service);
    const patient = await newPatient(service);
    const appointmentId = await book(service, patient, gp);
    const A = UP(appointmentId);
    const G = UP(gp.id);

    // The appointment, and the consultation it opens.
    const got = await call('GET /api/appointments/:appointmentId', () => patient.client.get(`/api/appointments/${A}`), 200);
    expect(got.body.id).toBe(appointmentId);
    const joined = await call('POST /api/appointments/:appointmentId/consultation', () => patient.client.post(`/api/appointments/${A}/consultation`), 200);
    const consultationId = joined.body.id as string;
    const C = UP(consultationId);
    await call('POST /api/consultations/:consultationId/start', () => gp.client.post(`/api/consultations/${C}/start`), 200);

    // The call: mode switch, consent, notes.
    await call('GET /api/consultations/:consultationId', () => patient.client.get(`/api/consultations/${C}`), 200);
    const asked = await call('POST /api/consultations/:consultationId/mode-requests', () => gp.client.post(`/api/consultations/${C}/mode-requests`, { mode: 'video' }), 200);
    const requestId = asked.body.pendingModeRequest.id as string;
    await call('POST /api/consultations/:consultationId/mode-requests/:requestId/answer', () =>
      patient.client.post(`/api/consultations/${C}/mode-requests/${UP(requestId)}/answer`, { accept: false }), 200);
    await call('POST /api/consultations/:consultationId/consent-requests', () => gp.client.post(`/api/consultations/${C}/consent-requests`, { media: 'audio' }), 200);
    await call('POST /api/consultations/:consultationId/consents', () =>
      patient.client.post(`/api/consultations/${C}/consents`, { media: 'audio', decision: 'granted' }, { 'idempotency-key': 'consent-1' }), 200);
    await call('PUT /api/consultations/:consultationId/notes', () => gp.client.put(`/api/consultations/${C}/notes`, { body: 'Sore throat, no fever.' }), 200);
    await call('GET /api/consultations/:consultationId/notes', () => gp.client.get(`/api/consultations/${C}/notes`), 200);

    // The recording, uploaded and finished under its upper-case id, then replayed.
    const rec = await call('POST /api/consultations/:consultationId/recordings', () => gp.client.post(`/api/consultations/${C}/recordings`), 201);
    const recordingId = rec.body.id as string;
    const R = UP(recordingId);
    for (const [seq, chunk] of chunksOf(CLIP, 3).entries()) {
      await call('PUT /api/recordings/:recordingId/chunks/:seq', () => gp.client.put(`/api/recordings/${R}/chunks/${seq}`, chunk), 200);
    }
    await call('GET /api/recordings/:recordingId/upload', () => gp.client.get(`/api/recordings/${R}/upload`), 200);
    await call('POST /api/recordings/:recordingId/finish', () => gp.client.post(`/api/recordings/${R}/finish`), 200);
    await finalised(service);
    const replay = await call('GET /api/recordings/:recordingId', () => patient.client.get(`/api/recordings/${R}`), 200);
    expect(replay.body.id).toBe(recordingId);
    const media = await call('GET /api/recordings/:recordingId/media', () => patient.client.request('GET', `/api/recordings/${R}/media`, undefined, { range: 'bytes=0-99' }), 206);
    expect(media.raw.rawPayload.length).toBe(100);
    // The same bytes as under the lower-case id.
    const lower = await patient.client.request('GET', `/api/recordings/${recordingId}/media`, undefined, { range: 'bytes=0-99' });
    expect(lower.raw.rawPayload.equals(media.raw.rawPayload)).toBe(true);

    await call('POST /api/consultations/:consultationId/end', () => gp.client.post(`/api/consultations/${C}/end`), 200);
    // Found under its upper-case id (not 404): its time has not come yet, as with the lower-case id.
    const outcome = await call('POST /api/appointments/:appointmentId/outcome', () => gp.client.post(`/api/appointments/${A}/outcome`, { outcome: 'completed' }), 409);
    expect(outcome.body.error.code).toBe('appointment_not_started');

    // The GP's week, an exception to it.
    await call('GET /api/clinicians/:clinicianId/availability', () => gp.client.get(`/api/clinicians/${G}/availability`), 200);
    const rules = [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' }));
    await call('PUT /api/clinicians/:clinicianId/availability', () => gp.client.put(`/api/clinicians/${G}/availability`, { rules }), 200);
    const exception = await call('POST /api/clinicians/:clinicianId/availability/exceptions', () =>
      gp.client.post(`/api/clinicians/${G}/availability/exceptions`, { startsAt: '2033-01-01T09:00:00Z', endsAt: '2033-01-01T10:00:00Z', reason: 'training' }), 201);
    const exceptionId = exception.body.exceptions[0].id as string;
    await call('DELETE /api/clinicians/:clinicianId/availability/exceptions/:exceptionId', () =>
      gp.client.delete(`/api/clinicians/${G}/availability/exceptions/${UP(exceptionId)}`), 200);

    // A second booking: moved, then cancelled; a notification read; another device signed out.
    const other = await newPatient(service);
    // Slots half an hour away or more: none starts while the test runs.
    const slots = ((await other.client.get(`/api/slots?clinicianId=${G}&limit=20`)).body.slots as { startsAt: string }[]).filter(
      (s) => Date.parse(s.startsAt) > Date.now() + 30 * 60_000,
    );
    const booked = await other.client.post('/api/appointments', { clinicianId: G, startsAt: slots[0]!.startsAt, mode: 'audio', reason: 'Rash' });
    expect(booked.status).toBe(201);
    expect(booked.body.clinician.id).toBe(gp.id);
    const B = UP(booked.body.id);
    const moved = await call('POST /api/appointments/:appointmentId/reschedule', () => other.client.post(`/api/appointments/${B}/reschedule`, { startsAt: slots[1]!.startsAt }), 200);
    await call('POST /api/appointments/:appointmentId/cancel', () => other.client.post(`/api/appointments/${UP(moved.body.id)}/cancel`), 200);
    const notification = (await other.client.get('/api/notifications')).body.notifications[0];
    await call('POST /api/notifications/:notificationId/read', () => other.client.post(`/api/notifications/${UP(notification.id)}/read`), 200);
    const device = other.client;
    const second = service.client();
    await second.post('/api/auth/sign-in', { email: other.email, password: other.password });
    const sessions = (await device.get('/api/account/sessions')).body.sessions as { id: string; current: boolean }[];
    const elsewhere = sessions.find((s) => !s.current)!;
    await call('DELETE /api/account/sessions/:sessionId', () => device.delete(`/api/account/sessions/${UP(elsewhere.id)}`), 200);
    expect((await second.get('/api/profile')).status).toBe(401);

    // The signalling socket's upgrade lower-cases the id itself (a WebSocket, tested in
    // test/consultations/signalling.test.ts); every other id-taking route was called above.
    seen.add('GET /api/consultations/:consultationId/signal');
    // A feature's name, not an id (test/features/kill-switches.test.ts).
    seen.add('PUT /api/features/:name');
    // Needs an alert, which needs a violation (test/guard/detection.test.ts acknowledges one by its id in upper case).
    seen.add('POST /api/guard/alerts/:id/acknowledge');
    const idRoutes = allRoutes.filter((r) => r.url.includes('/:')).map((r) => `${r.method} ${r.url}`);
    expect(idRoutes.filter((r) => !seen.has(r))).toEqual([]);
  });
});

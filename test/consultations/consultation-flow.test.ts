import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finaliseWebm } from '../../src/modules/recordings/webm';
import type { TestService } from '../harness';
import { latestAuditEvents, newPatient } from '../fixtures';
import { book, CLIP, chunksOf, finalised, liveConsultation, newGp, recordClip, startConsultationService } from './support';

let service: TestService;
beforeAll(async () => {
  service = await startConsultationService();
});
afterAll(async () => {
  await service?.close();
});

describe('joining and running a consultation', () => {
  it('puts the patient in the waiting room, shows them to their GP, and lets the GP start', async () => {
    const patient = await newPatient(service);
    const gp = await newGp(service);
    const appointmentId = await book(service, patient, gp, 'audio');
    const joined = await patient.client.post(`/api/appointments/${appointmentId}/consultation`);
    expect(joined.status).toBe(200);
    expect(joined.body).toMatchObject({ appointmentId, you: 'patient', status: 'waiting', mode: 'audio', bookedMode: 'audio' });
    expect(joined.body).not.toHaveProperty('patientId');

    const room = await gp.client.get('/api/waiting-room');
    expect(room.body.consultations.map((c: { id: string }) => c.id)).toContain(joined.body.id);
    expect(room.body.consultations[0].patient.displayName).toBe('Test Patient');

    const started = await gp.client.post(`/api/consultations/${joined.body.id}/start`);
    expect(started.body).toMatchObject({ status: 'live', you: 'clinician' });
    // Joining again is the same consultation.
    const again = await patient.client.post(`/api/appointments/${appointmentId}/consultation`);
    expect(again.body.id).toBe(joined.body.id);
    const gpJoin = await gp.client.post(`/api/appointments/${appointmentId}/consultation`);
    expect(gpJoin.body.id).toBe(joined.body.id);
  });

  it('refuses to open a consultation too early, and after the appointment was cancelled', async () => {
    const strict = await startConsultationService({ CONSULTATION_JOIN_EARLY_MINUTES: '0' });
    try {
      const patient = await newPatient(strict);
      const gp = await newGp(strict);
      // The web app learns the window from the session, to offer "Join" only once it is open.
      expect((await patient.client.get('/api/session')).body.consultationJoinEarlySeconds).toBe(0);
      expect((await gp.client.get('/api/session')).body.consultationJoinEarlySeconds).toBe(0);
      const slots = (await patient.client.get(`/api/slots?clinicianId=${gp.id}&limit=20`)).body.slots;
      const later = slots[slots.length - 1];
      const booked = await patient.client.post('/api/appointments', { clinicianId: gp.id, startsAt: later.startsAt, mode: 'audio', reason: 'Rash' });
      const early = await patient.client.post(`/api/appointments/${booked.body.id}/consultation`);
      expect(early.status).toBe(409);
      expect(early.body.error.code).toBe('consultation_not_open');
      expect(typeof early.body.error.details.opensAt).toBe('string');
    } finally {
      await strict.close();
    }
    const patient = await newPatient(service);
    expect((await patient.client.get('/api/session')).body.consultationJoinEarlySeconds).toBe(1440 * 60);
    const gp = await newGp(service);
    const appointmentId = await book(service, patient, gp);
    await patient.client.post(`/api/appointments/${appointmentId}/cancel`);
    const res = await patient.client.post(`/api/appointments/${appointmentId}/consultation`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('consultation_not_open');
  });

  it('switches to video only when the other side agrees, and back to audio at once', async () => {
    const c = await liveConsultation(service);
    const url = `/api/consultations/${c.consultationId}`;
    const asked = await c.gp.client.post(`${url}/mode-requests`, { mode: 'video' });
    expect(asked.body.mode).toBe('audio');
    expect(asked.body.pendingModeRequest).toMatchObject({ toMode: 'video', requestedBy: 'clinician' });
    const requestId = asked.body.pendingModeRequest.id;

    // The one who asked cannot answer their own request; the other side cannot ask over it.
    const self = await c.gp.client.post(`${url}/mode-requests/${requestId}/answer`, { accept: true });
    expect(self.status).toBe(409);
    expect(self.body.error.code).toBe('no_pending_request');
    const over = await c.patient.client.post(`${url}/mode-requests`, { mode: 'video' });
    expect(over.body.error.code).toBe('mode_request_pending');

    const agreed = await c.patient.client.post(`${url}/mode-requests/${requestId}/answer`, { accept: true });
    expect(agreed.body).toMatchObject({ mode: 'video', pendingModeRequest: null });
    const back = await c.patient.client.post(`${url}/mode-requests`, { mode: 'audio' });
    expect(back.body.mode).toBe('audio');

    // Declining leaves the call as it was.
    const again = await c.patient.client.post(`${url}/mode-requests`, { mode: 'video' });
    const declined = await c.gp.client.post(`${url}/mode-requests/${again.body.pendingModeRequest.id}/answer`, { accept: false });
    expect(declined.body).toMatchObject({ mode: 'audio', pendingModeRequest: null });
    // The patient who asked is told it was declined (not merely that the request went away).
    const seen = await c.patient.client.get(url);
    expect(seen.body.lastModeAnswer).toMatchObject({ id: again.body.pendingModeRequest.id, toMode: 'video', requestedBy: 'patient', status: 'declined' });
    // A request withdrawn by the one who asked says so.
    const third = await c.patient.client.post(`${url}/mode-requests`, { mode: 'video' });
    await c.patient.client.post(`${url}/mode-requests/${third.body.pendingModeRequest.id}/answer`, { accept: false });
    expect((await c.gp.client.get(url)).body.lastModeAnswer).toMatchObject({ id: third.body.pendingModeRequest.id, status: 'withdrawn' });
  });

  it('ends the consultation: the appointment is completed and nobody can join again', async () => {
    const c = await liveConsultation(service);
    const ended = await c.gp.client.post(`/api/consultations/${c.consultationId}/end`);
    expect(ended.body.status).toBe('ended');
    expect((await c.patient.client.get(`/api/appointments/${c.appointmentId}`)).body.status).toBe('completed');
    const rejoin = await c.patient.client.post(`/api/appointments/${c.appointmentId}/consultation`);
    expect(rejoin.status).toBe(409);
    expect(rejoin.body.error.code).toBe('consultation_ended');
    const switchAfter = await c.patient.client.post(`/api/consultations/${c.consultationId}/mode-requests`, { mode: 'video' });
    expect(switchAfter.body.error.code).toBe('consultation_ended');
  });

  it('shows the notes to the patient only once the consultation has ended', async () => {
    const c = await liveConsultation(service);
    const url = `/api/consultations/${c.consultationId}/notes`;
    const written = await c.gp.client.put(url, { body: 'Viral cough. Fluids, rest; come back if not better in 10 days.' });
    expect(written.status).toBe(200);
    expect((await c.patient.client.get(url)).body).toMatchObject({ body: '', updatedAt: null });
    await c.gp.client.post(`/api/consultations/${c.consultationId}/end`);
    expect((await c.patient.client.get(url)).body.body).toContain('Viral cough');
    // Notes are free text about a patient: the audit log holds their length, never the words.
    const events = await latestAuditEvents(service, 50);
    expect(JSON.stringify(events)).not.toContain('Viral cough');
  });

  it("leads the patient from the appointment to its consultation's notes once it has ended, and nobody else", async () => {
    const c = await liveConsultation(service);
    const listed = async () => {
      const mine = await c.patient.client.get('/api/appointments');
      expect(mine.status).toBe(200);
      return [...mine.body.upcoming, ...mine.body.past].find((a: { id: string }) => a.id === c.appointmentId);
    };
    // Live: nothing to lead to yet.
    expect((await listed()).consultationId).toBeNull();
    expect((await c.patient.client.get(`/api/appointments/${c.appointmentId}`)).body.consultationId).toBeNull();
    await c.gp.client.post(`/api/consultations/${c.consultationId}/end`);
    expect((await listed()).consultationId).toBe(c.consultationId);
    expect((await c.patient.client.get(`/api/appointments/${c.appointmentId}`)).body.consultationId).toBe(c.consultationId);
    // Mirror: another patient and another GP get neither the appointment nor its consultation.
    const other = await liveConsultation(service);
    for (const who of [other.patient.client, other.gp.client]) {
      const res = await who.get(`/api/appointments/${c.appointmentId}`);
      expect(res.status).toBe(404);
      expect(JSON.stringify(res.body)).not.toContain(c.consultationId);
    }
    const theirs = await other.patient.client.get('/api/appointments');
    expect(JSON.stringify(theirs.body)).not.toContain(c.consultationId);
  });

  it("leads the GP from a completed row of their day list back to its notes, and no other GP", async () => {
    const c = await liveConsultation(service);
    // The day list of the appointment's own clinic date (late in the evening it may be tomorrow's).
    const startsAt = (await c.patient.client.get(`/api/appointments/${c.appointmentId}`)).body.startsAt as string;
    const date = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/London' }).format(new Date(startsAt));
    const row = async (gp = c.gp) => {
      const day = await gp.client.get(`/api/schedule?date=${date}`);
      expect(day.status).toBe(200);
      return (day.body.appointments as { id: string; status: string; consultationId: string | null }[]).find((a) => a.id === c.appointmentId);
    };
    expect((await row())!.consultationId).toBeNull();
    await c.gp.client.post(`/api/consultations/${c.consultationId}/end`);
    expect(await row()).toMatchObject({ status: 'completed', consultationId: c.consultationId });
    expect((await c.gp.client.get(`/api/consultations/${c.consultationId}/notes`)).status).toBe(200);
    // Mirror: another GP's day list neither holds the row nor names the consultation.
    const other = await liveConsultation(service);
    const theirs = await other.gp.client.get(`/api/schedule?date=${date}`);
    expect(JSON.stringify(theirs.body)).not.toContain(c.consultationId);
    expect((await other.gp.client.get(`/api/consultations/${c.consultationId}/notes`)).status).toBe(404);
  });
});

describe('recording with consent', () => {
  it('refuses to record without the patient consenting to audio', async () => {
    const c = await liveConsultation(service);
    const res = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('consent_required');
    await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'audio' });
    const declined = await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'audio', decision: 'declined' });
    expect(declined.body.consent).toEqual({ audio: 'declined', video: 'none' });
    expect((await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`)).body.error.code).toBe('consent_required');
    // Only the patient decides; only the clinician asks.
    const gpGrants = await c.gp.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'audio', decision: 'granted' });
    expect(gpGrants.status).toBe(404);
    const patientAsks = await c.patient.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'audio' });
    expect(patientAsks.status).toBe(404);
  });

  it('takes chunks in order, idempotently, and makes a seekable replay of exactly what was sent', async () => {
    const c = await liveConsultation(service);
    await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'audio' });
    await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'audio', decision: 'granted' });
    const rec = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
    expect(rec.body).toMatchObject({ status: 'recording', nextSeq: 0, receivedBytes: 0 });
    const id = rec.body.id;
    const chunks = chunksOf(CLIP, 5);

    const skip = await c.gp.client.put(`/api/recordings/${id}/chunks/1`, chunks[1]);
    expect(skip.status).toBe(409);
    expect(skip.body.error).toMatchObject({ code: 'chunk_out_of_order', details: { nextSeq: 0 } });
    expect((await c.gp.client.put(`/api/recordings/${id}/chunks/0`, chunks[0])).body.nextSeq).toBe(1);
    // The same chunk again (a retry after a lost answer): accepted, nothing changes.
    const retry = await c.gp.client.put(`/api/recordings/${id}/chunks/0`, chunks[0]);
    expect(retry.status).toBe(200);
    expect(retry.body.nextSeq).toBe(1);
    // Different bytes under a number already taken: refused.
    const conflict = await c.gp.client.put(`/api/recordings/${id}/chunks/0`, chunks[1]);
    expect(conflict.body.error).toMatchObject({ code: 'chunk_conflict', details: { nextSeq: 1 } });
    for (let seq = 1; seq < chunks.length; seq++) {
      expect((await c.gp.client.put(`/api/recordings/${id}/chunks/${seq}`, chunks[seq])).status).toBe(200);
    }
    const state = await c.gp.client.get(`/api/recordings/${id}/upload`);
    expect(state.body).toMatchObject({ nextSeq: chunks.length, receivedBytes: CLIP.length });
    // JSON is not a chunk.
    const json = await c.gp.client.put(`/api/recordings/${id}/chunks/${chunks.length}`, { bytes: 'AAAA' });
    expect(json.status).toBe(415);

    expect((await c.gp.client.post(`/api/recordings/${id}/finish`)).body.status).toMatch(/finalising|ready/);
    await finalised(service);

    const replays = await c.patient.client.get('/api/replays');
    expect(replays.body.replays).toHaveLength(1);
    const replay = replays.body.replays[0];
    // The clip has pictures, but the patient agreed to sound only: the server keeps no video.
    expect(replay).toMatchObject({ id, consultationId: c.consultationId, mode: 'audio', mediaType: 'audio/webm' });
    expect(replay).not.toHaveProperty('patientId');
    const expected = finaliseWebm(CLIP, { keepVideo: () => false });
    expect(expected).toMatchObject({ hasVideo: false, hasAudio: true });
    expect(replay.durationMs).toBe(Math.round(expected.durationMs));
    expect(replay.sizeBytes).toBe(expected.data.length);
    expect((await c.gp.client.get('/api/replays')).body.replays.map((r: { id: string }) => r.id)).toEqual([id]);

    // The whole file, then a range from the middle: exactly the finalised bytes.
    const whole = await c.patient.client.get(`/api/recordings/${id}/media`);
    expect(whole.status).toBe(200);
    expect(whole.headers['accept-ranges']).toBe('bytes');
    expect(Buffer.compare(whole.raw.rawPayload, expected.data)).toBe(0);
    const mid = Math.floor(expected.data.length / 2);
    const part = await c.patient.client.request('GET', `/api/recordings/${id}/media`, undefined, { range: `bytes=${mid}-${mid + 99_999}` });
    expect(part.status).toBe(206);
    const end = Math.min(mid + 99_999, expected.data.length - 1);
    expect(part.headers['content-range']).toBe(`bytes ${mid}-${end}/${expected.data.length}`);
    expect(Buffer.compare(part.raw.rawPayload, expected.data.subarray(mid, end + 1))).toBe(0);

    // Audited with the bytes served and the seconds they hold.
    const [play] = await latestAuditEvents(service, 1);
    expect(play).toMatchObject({ action: 'recording.play', object_id: id, patient_id: c.patient.id, actor_id: c.patient.id });
    const details = JSON.parse(String(play!.details));
    expect(details).toMatchObject({ range: `${mid}-${end}`, bytes: end - mid + 1 });
    expect(details.fromMs).toBeGreaterThan(0);
    expect(details.toMs).toBeGreaterThan(details.fromMs);
    expect(details.toMs).toBeLessThanOrEqual(replay.durationMs);

    const beyond = await c.patient.client.request('GET', `/api/recordings/${id}/media`, undefined, { range: `bytes=${expected.data.length}-` });
    expect(beyond.status).toBe(416);
    expect(beyond.headers['content-range']).toBe(`bytes */${expected.data.length}`);
  });

  it('records video only from the moment the patient agrees to video being recorded', async () => {
    const c = await liveConsultation(service, { mode: 'video' });
    const audioOnly = await recordClip(service, c, CLIP, 4, { consent: 'audio' });
    expect((await c.patient.client.get(`/api/recordings/${audioOnly}`)).body).toMatchObject({ mode: 'audio', mediaType: 'audio/webm' });
    await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'video' });
    const granted = await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'video', decision: 'granted' });
    expect(granted.body.consent).toEqual({ audio: 'granted', video: 'granted' });
    const rec = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
    for (const [seq, chunk] of chunksOf(CLIP, 2).entries()) await c.gp.client.put(`/api/recordings/${rec.body.id}/chunks/${seq}`, chunk);
    await c.gp.client.post(`/api/recordings/${rec.body.id}/finish`);
    await finalised(service);
    expect((await c.patient.client.get(`/api/recordings/${rec.body.id}`)).body).toMatchObject({ mode: 'video', mediaType: 'video/webm' });
  });

  it('stops the recording when the patient withdraws consent, keeping what was recorded with it', async () => {
    const c = await liveConsultation(service);
    await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'audio' });
    await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'audio', decision: 'granted' });
    const rec = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
    const chunks = chunksOf(CLIP, 3);
    await c.gp.client.put(`/api/recordings/${rec.body.id}/chunks/0`, chunks[0]);
    await c.gp.client.put(`/api/recordings/${rec.body.id}/chunks/1`, chunks[1]);
    const withdrawn = await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'audio', decision: 'withdrawn' });
    expect(withdrawn.body.consent.audio).toBe('withdrawn');
    await new Promise((r) => setTimeout(r, 50));
    await finalised(service);
    const late = await c.gp.client.put(`/api/recordings/${rec.body.id}/chunks/2`, chunks[2]);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('recording_not_open');
    const replay = await c.patient.client.get(`/api/recordings/${rec.body.id}`);
    expect(replay.status).toBe(200);
    expect(replay.body.durationMs).toBeGreaterThan(0);
    expect((await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`)).body.error.code).toBe('consent_required');
  });

  it('finalises a recording whose uploader vanished, from what arrived (a truncated last chunk included)', async () => {
    const { sweepRecordings } = await import('../../src/modules/recordings/recordings');
    const c = await liveConsultation(service);
    await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'audio' });
    await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'audio', decision: 'granted' });
    const rec = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
    // The browser crashed mid-upload: 70% of the file arrived, cut mid-cluster.
    const arrived = CLIP.subarray(0, Math.floor(CLIP.length * 0.7));
    for (const [seq, chunk] of chunksOf(arrived, 3).entries()) await c.gp.client.put(`/api/recordings/${rec.body.id}/chunks/${seq}`, chunk);
    await c.gp.client.post(`/api/consultations/${c.consultationId}/end`);

    // Within the grace period nothing happens; after it, the sweep finalises.
    expect(await sweepRecordings(service.deps.scopes, service.deps.recordings, new Date())).toEqual([]);
    const later = new Date(Date.now() + 3 * 60_000);
    expect(await sweepRecordings(service.deps.scopes, service.deps.recordings, later)).toEqual([rec.body.id]);
    await finalised(service);
    const replay = await c.patient.client.get(`/api/recordings/${rec.body.id}`);
    expect(replay.status).toBe(200);
    expect(replay.body.durationMs).toBeGreaterThan(0);
    expect(replay.body.durationMs).toBeLessThan(finaliseWebm(CLIP).durationMs);
  });

  it('replaces a recording left open by a reloaded page, finalising the old one', async () => {
    const c = await liveConsultation(service);
    const first = await recordClipNoFinish(c);
    const second = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
    expect(second.status).toBe(201);
    expect(second.body.id).not.toBe(first);
    await finalised(service);
    expect((await c.patient.client.get(`/api/recordings/${first}`)).status).toBe(200);
  });
});

async function recordClipNoFinish(c: Awaited<ReturnType<typeof liveConsultation>>): Promise<string> {
  await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'audio' });
  await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'audio', decision: 'granted' });
  const rec = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
  for (const [seq, chunk] of chunksOf(CLIP, 2).entries()) await c.gp.client.put(`/api/recordings/${rec.body.id}/chunks/${seq}`, chunk);
  return rec.body.id;
}

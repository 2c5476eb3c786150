import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../src/db';
import type { TestClient, TestService } from '../harness';
import { dataCounts, latestAuditEvents, newPatient, newStaff } from '../fixtures';
import { CLIP, chunksOf, liveConsultation, newGp, recordClip, startConsultationService, type LiveConsultation } from './support';

/**
 * Mirror tests for every consultation and recording route: what the consultation's own patient
 * and clinician may do, anyone else — another patient, another clinician, the DPO, an admin,
 * an anonymous caller — is refused with 404 (401 when not signed in), exactly as for an id that
 * does not exist, and the only thing written anywhere is the audit event of the refusal.
 */
let service: TestService;
let done: LiveConsultation; // ended, with a finished recording
let live: LiveConsultation; // live, with a recording still uploading and a pending switch
let ids: { readyRecording: string; openRecording: string; modeRequest: string };

beforeAll(async () => {
  service = await startConsultationService();
  done = await liveConsultation(service);
  ids = { readyRecording: await recordClip(service, done), openRecording: '', modeRequest: '' };
  await done.gp.client.put(`/api/consultations/${done.consultationId}/notes`, { body: 'Private notes' });
  await done.gp.client.post(`/api/consultations/${done.consultationId}/end`);

  live = await liveConsultation(service);
  await live.gp.client.post(`/api/consultations/${live.consultationId}/consent-requests`, { media: 'audio' });
  await live.patient.client.post(`/api/consultations/${live.consultationId}/consents`, { media: 'audio', decision: 'granted' });
  const rec = await live.gp.client.post(`/api/consultations/${live.consultationId}/recordings`);
  ids.openRecording = rec.body.id;
  await live.gp.client.put(`/api/recordings/${ids.openRecording}/chunks/0`, chunksOf(CLIP, 3)[0]);
  const asked = await live.gp.client.post(`/api/consultations/${live.consultationId}/mode-requests`, { mode: 'video' });
  ids.modeRequest = asked.body.pendingModeRequest.id;
});
afterAll(async () => {
  await service?.close();
});

interface Call {
  name: string;
  method: 'GET' | 'POST' | 'PUT';
  path: (forged: boolean) => string;
  body?: unknown;
}
const id = (real: string, forged: boolean) => (forged ? randomUUID() : real);

const CALLS: Call[] = [
  { name: 'join', method: 'POST', path: (f) => `/api/appointments/${id(live.appointmentId, f)}/consultation` },
  { name: 'read consultation', method: 'GET', path: (f) => `/api/consultations/${id(live.consultationId, f)}` },
  { name: 'signal (HTTP)', method: 'GET', path: (f) => `/api/consultations/${id(live.consultationId, f)}/signal` },
  { name: 'start', method: 'POST', path: (f) => `/api/consultations/${id(live.consultationId, f)}/start` },
  { name: 'end', method: 'POST', path: (f) => `/api/consultations/${id(live.consultationId, f)}/end` },
  { name: 'ask to switch', method: 'POST', path: (f) => `/api/consultations/${id(live.consultationId, f)}/mode-requests`, body: { mode: 'audio' } },
  {
    name: 'answer a switch',
    method: 'POST',
    path: (f) => `/api/consultations/${id(live.consultationId, f)}/mode-requests/${ids.modeRequest}/answer`,
    body: { accept: true },
  },
  { name: 'ask consent', method: 'POST', path: (f) => `/api/consultations/${id(live.consultationId, f)}/consent-requests`, body: { media: 'video' } },
  { name: 'decide consent', method: 'POST', path: (f) => `/api/consultations/${id(live.consultationId, f)}/consents`, body: { media: 'audio', decision: 'withdrawn' } },
  { name: 'read notes', method: 'GET', path: (f) => `/api/consultations/${id(done.consultationId, f)}/notes` },
  { name: 'write notes', method: 'PUT', path: (f) => `/api/consultations/${id(done.consultationId, f)}/notes`, body: { body: 'Overwritten' } },
  { name: 'start recording', method: 'POST', path: (f) => `/api/consultations/${id(live.consultationId, f)}/recordings` },
  { name: 'upload a chunk', method: 'PUT', path: (f) => `/api/recordings/${id(ids.openRecording, f)}/chunks/1`, body: chunksOf(CLIP, 3)[1] },
  { name: 'upload state', method: 'GET', path: (f) => `/api/recordings/${id(ids.openRecording, f)}/upload` },
  { name: 'finish recording', method: 'POST', path: (f) => `/api/recordings/${id(ids.openRecording, f)}/finish` },
  { name: 'read replay', method: 'GET', path: (f) => `/api/recordings/${id(ids.readyRecording, f)}` },
  { name: 'play replay', method: 'GET', path: (f) => `/api/recordings/${id(ids.readyRecording, f)}/media` },
];

type Stranger = 'another patient' | 'another clinician' | 'the DPO' | 'an admin' | 'anonymous';
async function stranger(kind: Stranger): Promise<TestClient> {
  switch (kind) {
    case 'another patient':
      return (await newPatient(service)).client;
    case 'another clinician':
      return (await newGp(service)).client;
    case 'the DPO':
      return (await newStaff(service, 'dpo')).client;
    case 'an admin':
      return (await newStaff(service, 'admin')).client;
    case 'anonymous':
      return service.client();
  }
}

async function blobNames(): Promise<string[]> {
  return [...(await service.deps.recordings.blobs.list('staging')), ...(await service.deps.recordings.blobs.list('recordings'))].sort();
}

describe('consultations and recordings are their two parties\' only', () => {
  const strangers: Stranger[] = ['another patient', 'another clinician', 'the DPO', 'an admin', 'anonymous'];
  for (const call of CALLS) {
    for (const who of strangers) {
      it(`${call.name} by ${who} → ${who === 'anonymous' ? 401 : 404}, nothing written but the audit event`, async () => {
        const client = await stranger(who);
        const before = await dataCounts(service);
        const blobsBefore = await blobNames();
        const res = await client.request(call.method, call.path(false), call.body);
        const expected = who === 'anonymous' ? 401 : 404;
        expect(res.status, JSON.stringify(res.body)).toBe(expected);
        expect(JSON.stringify(res.body)).not.toMatch(/Private notes|Test Patient/);
        const after = await dataCounts(service);
        expect({ ...after, audit_events: 0 }).toEqual({ ...before, audit_events: 0 });
        expect(after.audit_events - before.audit_events).toBe(1);
        const [event] = await latestAuditEvents(service, 1);
        expect(event).toMatchObject({ outcome: 'denied', request_id: res.headers['x-request-id'] });
        expect(await blobNames()).toEqual(blobsBefore);

        // A forged id is answered exactly the same way.
        if (who !== 'anonymous') {
          const forged = await client.request(call.method, call.path(true), call.body);
          expect(forged.status).toBe(res.status);
          expect(forged.body.error.code).toBe(res.body.error.code);
          expect(forged.body.error.message).toBe(res.body.error.message);
        }
      });
    }
  }

  it('shows strangers no replays and no waiting patients', async () => {
    const other = await newPatient(service);
    expect((await other.client.get('/api/replays')).body.replays).toEqual([]);
    const gp = await newGp(service);
    expect((await gp.client.get('/api/replays')).body.replays).toEqual([]);
    expect((await gp.client.get('/api/waiting-room')).body.consultations).toEqual([]);
  });

  it('leaves the owners able to do what strangers were refused', async () => {
    expect((await live.patient.client.get(`/api/consultations/${live.consultationId}`)).status).toBe(200);
    expect((await done.patient.client.get(`/api/recordings/${ids.readyRecording}/media`)).status).toBe(200);
    expect((await done.gp.client.get(`/api/recordings/${ids.readyRecording}/media`)).status).toBe(200);
    expect((await done.patient.client.get(`/api/consultations/${done.consultationId}/notes`)).body.body).toBe('Private notes');
    const next = await live.gp.client.put(`/api/recordings/${ids.openRecording}/chunks/1`, chunksOf(CLIP, 3)[1]);
    expect(next.body.nextSeq).toBe(2);
  });
});

describe('ownership is decided by the database at write time', () => {
  it("copies a recording's patient and clinician from its consultation, whatever the insert says", async () => {
    const other = await newPatient(service);
    const gpId = live.gp.id;
    const rows = await service.db.transaction(
      { kind: 'clinician', id: gpId, role: null, sessionId: null, reason: null },
      async (tx) => {
        await sql`update recordings set status = 'failed' where consultation_id = ${live.consultationId} and status = 'recording'`.execute(tx);
        // Code that tried to name the patient itself (the 2020 failure) is overruled.
        return sql<{ patient_id: string; clinician_id: string }>`
          insert into recordings (id, consultation_id, patient_id, clinician_id, media_type, key_id, wrapped_key)
          values (gen_random_uuid(), ${live.consultationId}, ${other.id}, ${gpId}, 'video/webm', '0000000000000000', '\\x00')
          returning patient_id, clinician_id`.execute(tx);
      },
    ).catch((err: Error) => err);
    expect(rows).not.toBeInstanceOf(Error);
    const row = (rows as { rows: { patient_id: string; clinician_id: string }[] }).rows[0]!;
    expect(row.patient_id).toBe(live.patient.id);
    expect(row.clinician_id).toBe(gpId);
  });

  it('refuses to move a recording to another patient, even for system work', async () => {
    const other = await newPatient(service);
    const err = await service.db
      .transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: 'test: try to move a recording' }, (tx) =>
        sql`update recordings set patient_id = ${other.id} where id = ${ids.readyRecording}`.execute(tx),
      )
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/cannot change/);
  });

  it("refuses a clinician's recording for a consultation that is not theirs", async () => {
    const gp = await newGp(service);
    const err = await service.db
      .transaction({ kind: 'clinician', id: gp.id, role: null, sessionId: null, reason: null }, (tx) =>
        sql`insert into recordings (id, consultation_id, media_type, key_id, wrapped_key)
            values (gen_random_uuid(), ${live.consultationId}, 'video/webm', '0000000000000000', '\\x00')`.execute(tx),
      )
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/consultation not found/);
  });
});

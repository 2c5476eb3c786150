import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { startTestService, testConfig, type TestService } from '../harness';
import { newPatient, newStaff, type PatientHandle, type StaffHandle } from '../fixtures';

/** A real Chromium MediaRecorder clip (about 4 s, VP8 + Opus), as the clinician's browser uploads it. */
export const CLIP = readFileSync(path.resolve(import.meta.dirname, '../../src/demo/assets/demo-consultation.webm'));

/** The clip cut into `n` chunks, as MediaRecorder's timeslice would deliver it. */
export function chunksOf(data: Buffer, n: number): Buffer[] {
  const size = Math.ceil(data.length / n);
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

/** A service where any booked appointment in the next day can be joined at once. */
export async function startConsultationService(overrides: Record<string, string> = {}): Promise<TestService> {
  return startTestService({ config: testConfig({ CONSULTATION_JOIN_EARLY_MINUTES: '1440', ...overrides }) });
}

/** A GP who works around the clock, so a slot is always free soon. */
export async function newGp(service: TestService): Promise<StaffHandle> {
  const gp = await newStaff(service, 'clinician');
  const res = await gp.client.put(`/api/clinicians/${gp.id}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return gp;
}

let slotCursor = 0;
/** Books one of the GP's next free slots for the patient and returns the appointment id. */
export async function book(service: TestService, patient: PatientHandle, gp: StaffHandle, mode: 'audio' | 'video' = 'audio'): Promise<string> {
  const slots = (await patient.client.get(`/api/slots?clinicianId=${gp.id}&limit=20`)).body.slots as { startsAt: string }[];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[(slotCursor + i) % slots.length]!;
    const res = await patient.client.post('/api/appointments', { clinicianId: gp.id, startsAt: slot.startsAt, mode, reason: 'Cough for a week' });
    if (res.status === 201) {
      slotCursor++;
      return res.body.id;
    }
  }
  throw new Error('no slot could be booked');
}

export interface LiveConsultation {
  patient: PatientHandle;
  gp: StaffHandle;
  appointmentId: string;
  consultationId: string;
}

/** Patient and GP in a live consultation (joined and started). */
export async function liveConsultation(service: TestService, opts: { patient?: PatientHandle; gp?: StaffHandle; mode?: 'audio' | 'video' } = {}): Promise<LiveConsultation> {
  const patient = opts.patient ?? (await newPatient(service));
  const gp = opts.gp ?? (await newGp(service));
  const appointmentId = await book(service, patient, gp, opts.mode ?? 'audio');
  const joined = await patient.client.post(`/api/appointments/${appointmentId}/consultation`);
  expect(joined.status, JSON.stringify(joined.body)).toBe(200);
  const consultationId = joined.body.id as string;
  const started = await gp.client.post(`/api/consultations/${consultationId}/start`);
  expect(started.status, JSON.stringify(started.body)).toBe(200);
  return { patient, gp, appointmentId, consultationId };
}

export interface RecordClipOptions {
  /**
   * What the patient agrees to be recorded: sound and pictures (the default; consent to video is
   * given before the recording starts, so the server keeps the whole clip) or sound only (the
   * server then keeps no video: the replay is the clip with its video track cut out).
   */
  consent?: 'audio and video' | 'audio';
}

/** Consent (see RecordClipOptions), a recording, every chunk of the clip, finished and finalised: a replay. */
export async function recordClip(service: TestService, c: LiveConsultation, clip = CLIP, parts = 4, opts: RecordClipOptions = {}): Promise<string> {
  const media: ('audio' | 'video')[] = (opts.consent ?? 'audio and video') === 'audio' ? ['audio'] : ['audio', 'video'];
  for (const m of media) {
    await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: m });
    const consent = await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: m, decision: 'granted' });
    expect(consent.status, JSON.stringify(consent.body)).toBe(200);
  }
  const rec = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
  expect(rec.status, JSON.stringify(rec.body)).toBe(201);
  const id = rec.body.id as string;
  const chunks = chunksOf(clip, parts);
  for (const [seq, chunk] of chunks.entries()) {
    const up = await c.gp.client.put(`/api/recordings/${id}/chunks/${seq}`, chunk);
    expect(up.status, JSON.stringify(up.body)).toBe(200);
  }
  const done = await c.gp.client.post(`/api/recordings/${id}/finish`);
  expect(done.status, JSON.stringify(done.body)).toBe(200);
  await finalised(service);
  return id;
}

/** Waits for background finalisation to finish. */
export async function finalised(service: TestService): Promise<void> {
  await service.deps.recordings.finaliser.idle();
}

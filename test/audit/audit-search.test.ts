import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newStaff } from '../fixtures';
import type { TestService } from '../harness';
import { liveConsultation, recordClip, startConsultationService } from '../consultations/support';

// The DPO's search of the trail says what each event recorded, not only who did what: for a
// replay, which bytes were served and which seconds of the recording they hold (issue 14, item 7).
let service: TestService;
beforeAll(async () => {
  service = await startConsultationService();
});
afterAll(async () => {
  await service?.close();
});

describe('audit search', () => {
  it("shows a replay's bytes and seconds to the DPO", async () => {
    const c = await liveConsultation(service);
    const recordingId = await recordClip(service, c);
    const played = await c.patient.client.request('GET', `/api/recordings/${recordingId}/media`, undefined, { range: 'bytes=0-99' });
    expect(played.status).toBe(206);
    const whole = await c.patient.client.request('GET', `/api/recordings/${recordingId}/media`, undefined, { range: 'bytes=0-' });
    expect(whole.status).toBe(206);

    const dpo = await newStaff(service, 'dpo');
    const found = await dpo.client.post('/api/audit/events/search', { action: 'recording.play', patientId: c.patient.id, limit: 10 });
    expect(found.status, JSON.stringify(found.body)).toBe(200);
    const [all, first] = found.body.events as { objectId: string; details: Record<string, unknown> }[];
    expect(first).toMatchObject({ objectId: recordingId, details: { range: '0-99', bytes: 100, fromMs: 0, toMs: 0 } });
    expect(all!.details).toMatchObject({ range: `0-${whole.raw.rawPayload.length - 1}`, bytes: whole.raw.rawPayload.length, fromMs: 0 });
    // The whole recording holds its whole duration.
    const replay = await c.patient.client.get(`/api/recordings/${recordingId}`);
    expect(all!.details.toMs).toBe(replay.body.durationMs);
  });
});

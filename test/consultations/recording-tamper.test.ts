import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingBlobName } from '../../src/modules/recordings/recordings';
import type { TestService } from '../harness';
import { latestAuditEvents } from '../fixtures';
import { liveConsultation, recordClip, startConsultationService, type LiveConsultation } from './support';

/**
 * A stored recording that has been changed on disk is refused, never served as plaintext:
 * a flipped byte, a truncated file, and two recordings' ciphertexts swapped.
 */
let service: TestService;
let a: LiveConsultation;
let b: LiveConsultation;
let recA: string;
let recB: string;

beforeAll(async () => {
  service = await startConsultationService();
  a = await liveConsultation(service);
  recA = await recordClip(service, a);
  b = await liveConsultation(service);
  recB = await recordClip(service, b);
});
afterAll(async () => {
  await service?.close();
});

const blobs = () => service.deps.recordings.blobs;
async function readBlob(id: string): Promise<Buffer> {
  const r = await blobs().open(recordingBlobName(id));
  try {
    return await r.read(0, await r.size());
  } finally {
    await r.close();
  }
}

/** Plays a range; a failure either answers an error or cuts the stream short, never with wrong bytes. */
async function play(who: LiveConsultation, id: string, range?: string) {
  return who.patient.client.request('GET', `/api/recordings/${id}/media`, undefined, range ? { range } : {});
}

describe('tampered recordings', () => {
  it('serves the untouched recordings', async () => {
    expect((await play(a, recA)).status).toBe(200);
    expect((await play(b, recB)).status).toBe(200);
  });

  it('refuses a recording with one flipped byte, and audits the failure', async () => {
    const original = await readBlob(recA);
    for (const at of [0, 12, Math.floor(original.length / 2), original.length - 1]) {
      const flipped = Buffer.from(original);
      flipped[at] = flipped[at]! ^ 0x01;
      await blobs().put(recordingBlobName(recA), flipped);
      for (const range of [undefined, 'bytes=0-999', 'bytes=20000-']) {
        const res = await play(a, recA, range);
        expect(res.status, `byte ${at}, ${range}`).toBe(500);
        expect(res.body.error.code).toBe('recording_damaged');
      }
    }
    await blobs().put(recordingBlobName(recA), original);
    const events = await latestAuditEvents(service, 10);
    expect(events.some((e) => e.action === 'recording.integrity_failed' && e.object_id === recA && e.outcome === 'failure')).toBe(true);
    expect((await play(a, recA)).status).toBe(200);
  });

  it('refuses a truncated recording, whatever range is asked for', async () => {
    const original = await readBlob(recA);
    await blobs().put(recordingBlobName(recA), original.subarray(0, original.length - 1));
    try {
      for (const range of [undefined, 'bytes=0-99']) {
        const res = await play(a, recA, range);
        expect(res.status).toBe(500);
        expect(res.body.error.code).toBe('recording_damaged');
      }
    } finally {
      await blobs().put(recordingBlobName(recA), original);
    }
    expect((await play(a, recA)).status).toBe(200);
  });

  it("refuses two recordings whose ciphertexts were swapped (nobody gets the other's)", async () => {
    const dataA = await readBlob(recA);
    const dataB = await readBlob(recB);
    // Same clip, same size: only the keys and the bound recording ids tell them apart.
    await blobs().put(recordingBlobName(recA), dataB);
    await blobs().put(recordingBlobName(recB), dataA);
    try {
      for (const [who, id] of [[a, recA], [b, recB]] as const) {
        const res = await play(who, id, 'bytes=0-999');
        expect(res.status).toBe(500);
        expect(res.body.error.code).toBe('recording_damaged');
      }
    } finally {
      await blobs().put(recordingBlobName(recA), dataA);
      await blobs().put(recordingBlobName(recB), dataB);
    }
  });
});

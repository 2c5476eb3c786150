import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
// The bench's recording maker: a valid webm of any size, random content (bench/lib/replay-setup.ts).
import { synthesiseWebm } from '../../bench/lib/replay-setup';
import { recordingBlobName } from '../../src/modules/recordings/recordings';
import { IV_BYTES, SEALED_SEGMENT_SIZE, SEGMENT_SIZE } from '../../src/modules/recordings/sealed-segments';
import { finaliseWebm } from '../../src/modules/recordings/webm';
import type { TestService } from '../harness';
import { latestAuditEvents, restoreKilledFeatures } from '../fixtures';
import { liveConsultation, recordClip, startConsultationService, type LiveConsultation } from './support';

/**
 * A stored recording that has been changed on disk is refused, never served as plaintext:
 * a flipped byte, a truncated file, and two recordings' ciphertexts swapped. Damage in a later
 * segment leaves the segments before it playable, and a stream running into it is cut short.
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

// A damaged recording played is an integrity signal: the breach guard switches replays off
// (test/guard/detection.test.ts). Switched back on after each test.
afterEach(async () => {
  await restoreKilledFeatures(service);
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
/** Each play is judged on its own: replays switched off by an earlier play's damage come back on first. */
async function play(who: LiveConsultation, id: string, range?: string) {
  await restoreKilledFeatures(service);
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

/**
 * Plays a range over a real socket: a stream cut short after its headers went out can only be
 * seen there (the injected request of `play` fails as a whole). `complete` is false when the
 * server broke the response off before its declared length.
 */
async function playOverSocket(who: LiveConsultation, id: string, range: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; complete: boolean }> {
  await restoreKilledFeatures(service);
  const { port } = service.built.app.server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/api/recordings/${id}/media`, headers: { cookie: who.patient.client.cookie!, range } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('error', () => undefined); // 'aborted': seen as complete === false below
      res.on('close', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), complete: res.complete }));
    });
    req.on('error', reject);
  });
}

describe('a recording damaged in a later segment', () => {
  beforeAll(async () => {
    await service.built.app.listen({ port: 0, host: '127.0.0.1' });
  });

  it('plays the segments before the damage, refuses a range starting in it, and cuts short a range running into it', async () => {
    const c = await liveConsultation(service);
    const clip = Buffer.from(synthesiseWebm(400 * 1024).data);
    const id = await recordClip(service, c, clip, 4);
    const expected = finaliseWebm(clip).data;
    const original = await readBlob(id);
    const segments = Math.ceil(expected.length / SEGMENT_SIZE);
    expect(segments).toBeGreaterThanOrEqual(6);
    expect(original.length).toBe(expected.length + segments * (SEALED_SEGMENT_SIZE - SEGMENT_SIZE));

    // One byte of segment 4's ciphertext (segments 0-3 and 5- are untouched).
    const bad = 4;
    const flipped = Buffer.from(original);
    const at = bad * SEALED_SEGMENT_SIZE + IV_BYTES + 1000;
    flipped[at] = flipped[at]! ^ 0x01;
    const damageFrom = bad * SEGMENT_SIZE; // first plaintext byte of the damaged segment
    await blobs().put(recordingBlobName(id), flipped);
    const failuresBefore = (await latestAuditEvents(service, 200)).filter((e) => e.action === 'recording.integrity_failed' && e.object_id === id).length;
    try {
      // (a) Wholly before the damaged segment: exactly the right bytes.
      const before = await play(c, id, `bytes=1000-${damageFrom - 1}`);
      expect(before.status).toBe(206);
      expect(before.headers['content-range']).toBe(`bytes 1000-${damageFrom - 1}/${expected.length}`);
      expect(Buffer.compare(before.raw.rawPayload, expected.subarray(1000, damageFrom))).toBe(0);

      // (b) Starting inside the damaged segment: refused before a byte of it is sent.
      for (const range of [`bytes=${damageFrom}-`, `bytes=${damageFrom + 5000}-${damageFrom + 5999}`]) {
        const inside = await play(c, id, range);
        expect(inside.status, range).toBe(500);
        expect(inside.body.error.code, range).toBe('recording_damaged');
        expect(inside.headers['content-range'], range).toBeUndefined();
        expect(inside.raw.rawPayload.includes(expected.subarray(damageFrom + 5000, damageFrom + 5032)), range).toBe(false);
      }

      // (c) Starting before it and running over it: only bytes of the segments before it, then cut short.
      // It starts in segment 1, so the damage is found after the headers went out (segment 1 is checked
      // before them, segment 2 is the one read ahead), mid-stream.
      const from = SEGMENT_SIZE + 123;
      const over = await playOverSocket(c, id, `bytes=${from}-`);
      expect(over.status).toBe(206);
      expect(over.headers['content-length']).toBe(String(expected.length - from));
      expect(over.complete).toBe(false);
      const got = over.body;
      expect(got.length).toBeLessThanOrEqual(damageFrom - from);
      expect(got.length).toBeLessThan(expected.length - from);
      expect(Buffer.compare(got, expected.subarray(from, from + got.length))).toBe(0);

      // Audited and alerted: each refusal and the stream cut short.
      let failures = 0;
      for (let i = 0; i < 100; i++) {
        failures = (await latestAuditEvents(service, 200)).filter((e) => e.action === 'recording.integrity_failed' && e.object_id === id && e.outcome === 'failure').length;
        if (failures >= failuresBefore + 3) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(failures).toBe(failuresBefore + 3);
      // And what the stream cut short did deliver: its range, bytes and seconds, marked as cut by the damage.
      let cut: Record<string, unknown> | undefined;
      for (let i = 0; i < 100 && !cut; i++) {
        const e = (await latestAuditEvents(service, 50)).find((e) => e.action === 'recording.play_cut_short' && e.object_id === id);
        if (e) cut = JSON.parse(String(e.details));
        else await new Promise((r) => setTimeout(r, 20));
      }
      expect(cut).toMatchObject({ cutBy: 'damage', range: `${from}-${from + (cut?.bytes as number) - 1}` });
      expect(cut!.bytes as number).toBeGreaterThanOrEqual(got.length);
      expect(cut!.bytes as number).toBeLessThanOrEqual(damageFrom - from);
      expect(cut!.toMs as number).toBeGreaterThan(cut!.fromMs as number);
      expect(service.logs.some((l) => l.includes('"alert":"recording_damaged"') && l.includes(id))).toBe(true);
    } finally {
      await blobs().put(recordingBlobName(id), original);
    }
    const whole = await play(c, id);
    expect(whole.status).toBe(200);
    expect(Buffer.compare(whole.raw.rawPayload, expected)).toBe(0);
  });
});

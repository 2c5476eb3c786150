import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The bench's recording maker: a valid webm of any size, random content (bench/lib/replay-setup.ts).
import { synthesiseWebm } from '../../bench/lib/replay-setup';
import { finaliseWebm } from '../../src/modules/recordings/webm';
import { RECORDING_BUFFERS } from '../../src/modules/recordings/sealed-segments';
import type { TestService } from '../harness';
import { latestAuditEvents } from '../fixtures';
import { liveConsultation, recordClip, startConsultationService } from './support';

// A replay the viewer cuts short over a real socket (a seek, a closed tab): audited with what it
// really received, and its plaintext buffers given to this recording's next streams once the
// socket has closed, never to another recording's.

let service: TestService;
let port: number;

beforeAll(async () => {
  service = await startConsultationService();
  await service.built.app.listen({ port: 0, host: '127.0.0.1' });
  port = (service.built.app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await service?.close();
});

/** GETs the media over a socket, takes at least `atLeast` bytes, then destroys the socket. */
function cutShort(path: string, cookie: string, atLeast: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { cookie, range: 'bytes=0-' } }, (res) => {
      let got = 0;
      res.on('data', (b: Buffer) => {
        got += b.length;
        if (got >= atLeast) {
          req.destroy();
          resolve(got);
        }
      });
      res.on('error', () => undefined);
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
  });
}

describe('a replay cut short', () => {
  it('is audited with the bytes it got; its buffers go back to its own recording once the socket has closed', async () => {
    const c = await liveConsultation(service);
    const clip = Buffer.from(synthesiseWebm(6 * 1024 * 1024).data);
    const id = await recordClip(service, c, clip, 4);
    const expected = finaliseWebm(clip).data;
    RECORDING_BUFFERS.clear();

    await cutShort(`/api/recordings/${id}/media`, c.patient.client.cookie!, 1);

    // Audited twice: the play (the whole range asked for), then what was really received.
    let events: Awaited<ReturnType<typeof latestAuditEvents>> = [];
    for (let i = 0; i < 100 && !events.some((e) => e.action === 'recording.play_cut_short'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      events = await latestAuditEvents(service, 3);
    }
    const play = events.find((e) => e.action === 'recording.play');
    const cut = events.find((e) => e.action === 'recording.play_cut_short');
    expect(play).toMatchObject({ object_id: id, patient_id: c.patient.id, actor_id: c.patient.id });
    expect(JSON.parse(String(play!.details))).toMatchObject({ range: `0-${expected.length - 1}`, bytes: expected.length });
    expect(cut).toMatchObject({ object_id: id, patient_id: c.patient.id, actor_id: c.patient.id });
    const cutDetails = JSON.parse(String(cut!.details));
    expect(cutDetails.bytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(cutDetails.bytes).toBeLessThan(expected.length);
    expect(cutDetails.range).toBe(`0-${cutDetails.bytes - 1}`);
    // The seconds it got: from the start, and fewer than the whole recording's.
    const playDetails = JSON.parse(String(play!.details));
    expect(cutDetails.fromMs).toBe(0);
    expect(cutDetails.toMs).toBeGreaterThan(0);
    expect(cutDetails.toMs).toBeLessThan(playDetails.toMs);

    // The stream's buffers went back, to this recording only.
    for (let i = 0; i < 100 && RECORDING_BUFFERS.stats().of(id) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(RECORDING_BUFFERS.stats().of(id)).toBeGreaterThan(0);
    expect(RECORDING_BUFFERS.stats().bytes).toBe(RECORDING_BUFFERS.stats().of(id));

    // The next replays of it (which may reuse them) get exactly the recording's bytes.
    const whole = await c.patient.client.get(`/api/recordings/${id}/media`);
    expect(whole.status).toBe(200);
    expect(Buffer.compare(whole.raw.rawPayload, expected)).toBe(0);
    const mid = Math.floor(expected.length / 3);
    const part = await c.patient.client.request('GET', `/api/recordings/${id}/media`, undefined, { range: `bytes=${mid}-` });
    expect(Buffer.compare(part.raw.rawPayload, expected.subarray(mid))).toBe(0);
    RECORDING_BUFFERS.clear();
  });
});

import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../src/db';
import { finaliseWebm } from '../../src/modules/recordings/webm';
import type { TestService } from '../harness';
import { chunksOf, finalised, liveConsultation, startConsultationService, type LiveConsultation } from '../consultations/support';

/**
 * Issue 15: the server keeps only the video the patient consented to, whatever the clinician's
 * browser uploads. Checked on what is stored (decrypted by the replay route) with ffprobe, from a
 * real Chromium MediaRecorder file (VP8 track 1 with keyframes at 0 and 2.001 s, Opus track 2).
 */
const OPAQUE = readFileSync(path.resolve(import.meta.dirname, 'opaque-canvas-vp8-opus.webm'));

let service: TestService;
const tmp = mkdtempSync(path.join(tmpdir(), 'confidant-video-consent-'));
beforeAll(async () => {
  service = await startConsultationService();
});
afterAll(async () => {
  await service?.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface Packet {
  type: 'video' | 'audio';
  ms: number;
  key: boolean;
}
interface Probe {
  streams: string[];
  packets: Packet[];
  frames: Record<string, number>;
}

/** ffprobe: the streams, every packet (a block: its time and keyframe flag), and the frames it decodes per stream. */
function ffprobe(data: Buffer): Probe {
  const file = path.join(tmp, `${randomUUID()}.webm`);
  writeFileSync(file, data);
  const run = (args: string[]) => JSON.parse(execFileSync('ffprobe', ['-v', 'error', ...args, '-of', 'json', file], { encoding: 'utf8' }));
  const s = run(['-count_frames', '-show_entries', 'stream=index,codec_type,codec_name,nb_read_frames']) as {
    streams: { index: number; codec_type: 'video' | 'audio'; codec_name: string; nb_read_frames: string }[];
  };
  const p = run(['-show_entries', 'packet=stream_index,pts_time,flags']) as { packets: { stream_index: number; pts_time: string; flags: string }[] };
  const typeOf = new Map(s.streams.map((x) => [x.index, x.codec_type]));
  return {
    streams: s.streams.map((x) => `${x.codec_type}/${x.codec_name}`),
    packets: p.packets.map((x) => ({ type: typeOf.get(x.stream_index)!, ms: Math.round(Number(x.pts_time) * 1000), key: x.flags.startsWith('K') })),
    frames: Object.fromEntries(s.streams.map((x) => [x.codec_type, Number(x.nb_read_frames)])),
  };
}

const system = <T>(reason: string, fn: Parameters<TestService['db']['transaction']>[1]) =>
  service.db.transaction({ kind: 'system', id: null, role: null, sessionId: null, reason: `test: ${reason}` }, fn) as Promise<T>;

/** The patient agrees to sound being recorded and the GP starts a recording: its id. */
async function startRecording(c: LiveConsultation): Promise<string> {
  await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'audio' });
  const consent = await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'audio', decision: 'granted' });
  expect(consent.status, JSON.stringify(consent.body)).toBe(200);
  const rec = await c.gp.client.post(`/api/consultations/${c.consultationId}/recordings`);
  expect(rec.status, JSON.stringify(rec.body)).toBe(201);
  return rec.body.id as string;
}

async function upload(c: LiveConsultation, id: string, clip: Buffer) {
  for (const [seq, chunk] of chunksOf(clip, 4).entries()) {
    const up = await c.gp.client.put(`/api/recordings/${id}/chunks/${seq}`, chunk);
    expect(up.status, JSON.stringify(up.body)).toBe(200);
  }
}

async function finish(c: LiveConsultation, id: string) {
  expect((await c.gp.client.post(`/api/recordings/${id}/finish`)).status).toBe(200);
  await finalised(service);
}

/**
 * The stored recording as the patient's replay serves it (decrypted), checked against what the
 * database says of it: its size, and a time index whose every offset is a Cluster of that time.
 */
async function stored(c: LiveConsultation, id: string): Promise<{ data: Buffer; replay: { mode: string; mediaType: string; sizeBytes: number; durationMs: number } }> {
  const replay = await c.patient.client.get(`/api/recordings/${id}`);
  expect(replay.status, JSON.stringify(replay.body)).toBe(200);
  const media = await c.patient.client.get(`/api/recordings/${id}/media`);
  expect(media.status).toBe(200);
  const data = media.raw.rawPayload;
  expect(data.length).toBe(replay.body.sizeBytes);
  const row = await system<{ rows: { time_index: [number, number][]; plaintext_size: string }[] }>('read the time index', (tx) =>
    sql`select time_index, plaintext_size from recordings where id = ${id}`.execute(tx),
  );
  const { time_index: index, plaintext_size: size } = row.rows[0]!;
  expect(Number(size)).toBe(data.length);
  expect(index.length).toBeGreaterThan(0);
  for (const [offset, ms] of index) {
    expect(data.readUInt32BE(offset), `Cluster at ${offset}`).toBe(0x1f43b675);
    // ID (4 bytes), an 8-byte or shorter size, then the Timecode (0xe7) first.
    const sizeLen = Math.clz32(data[offset + 4]!) - 23;
    const tc = offset + 4 + sizeLen;
    expect(data[tc]).toBe(0xe7);
    const len = data[tc + 1]! & 0x7f;
    expect(data.readUIntBE(tc + 2, len)).toBe(ms);
  }
  return { data, replay: replay.body };
}

const INPUT = ffprobe(OPAQUE);
const inputVideo = INPUT.packets.filter((p) => p.type === 'video');
const inputAudio = INPUT.packets.filter((p) => p.type === 'audio');
const lastBlockMs = Math.max(...INPUT.packets.map((p) => p.ms));

describe('video kept only while the patient consented to it', () => {
  it('the fixture: VP8 and Opus, video keyframes at 0 and 2.001 s', () => {
    expect(INPUT.streams.sort()).toEqual(['audio/opus', 'video/vp8']);
    expect(inputVideo.filter((p) => p.key).map((p) => p.ms)).toEqual([0, 2001]);
    expect(inputVideo.length).toBeGreaterThan(50);
  });

  it('consent to sound only: the stored file has no video track, and every sound block', async () => {
    const c = await liveConsultation(service, { mode: 'video' });
    const id = await startRecording(c);
    // The clinician's browser sends pictures all the same.
    await upload(c, id, OPAQUE);
    await finish(c, id);

    const { data, replay } = await stored(c, id);
    expect(replay).toMatchObject({ mode: 'audio', mediaType: 'audio/webm' });
    const probe = ffprobe(data);
    expect(probe.streams).toEqual(['audio/opus']);
    expect(probe.packets.map((p) => p.ms)).toEqual(inputAudio.map((p) => p.ms));
    expect(probe.frames.audio).toBe(INPUT.frames.audio);
  });

  it('consent to video for part of the time: only the video blocks inside that window, from a keyframe', async () => {
    const c = await liveConsultation(service, { mode: 'video' });
    const id = await startRecording(c);
    await upload(c, id, OPAQUE);
    // Pin the clock: the recording started at t0; video was asked for at 0.5 s, granted at 1.5 s and
    // withdrawn at 3.2 s; the last chunk arrived 0.3 s after its last block's time (so the recorder
    // may have started up to 0.3 s after t0: a block is kept only if it lies in the window either way).
    const t0 = Date.now() - 60_000;
    const iso = (ms: number) => new Date(t0 + ms).toISOString();
    const lagMs = 300;
    await system('pin the consent times', async (tx) => {
      await sql`update recordings set started_at = ${iso(0)}::timestamptz, last_chunk_at = ${iso(lastBlockMs + lagMs)}::timestamptz where id = ${id}`.execute(tx);
      for (const [decision, actor, ms] of [
        ['requested', c.gp.id, 500],
        ['granted', c.patient.id, 1_500],
        ['withdrawn', c.patient.id, 3_200],
      ] as const) {
        await sql`insert into recording_consents (consultation_id, media, decision, actor_id, created_at)
          values (${c.consultationId}, 'video', ${decision}, ${actor}, ${iso(ms)}::timestamptz)`.execute(tx);
      }
    });
    await finish(c, id);

    const { data, replay } = await stored(c, id);
    expect(replay).toMatchObject({ mode: 'video', mediaType: 'video/webm' });
    const probe = ffprobe(data);
    expect(probe.streams.sort()).toEqual(['audio/opus', 'video/vp8']);
    const video = probe.packets.filter((p) => p.type === 'video');
    // From the first keyframe at or after 1.5 s (2.001 s: the frames before it could not be
    // decoded without the ones cut) to the last block certainly captured before 3.2 s.
    const expected = inputVideo.filter((p) => p.ms >= 2_001 && p.ms + lagMs < 3_200).map((p) => p.ms);
    expect(expected.length).toBeGreaterThan(10);
    expect(video.map((p) => p.ms)).toEqual(expected);
    expect(video[0]!.key).toBe(true);
    expect(probe.frames.video).toBe(expected.length);
    // All the sound, consented throughout.
    expect(probe.packets.filter((p) => p.type === 'audio').map((p) => p.ms)).toEqual(inputAudio.map((p) => p.ms));
    expect(probe.frames.audio).toBe(INPUT.frames.audio);
  });

  it('consent to video before the recording started: the whole recording as finalised, video included', async () => {
    const c = await liveConsultation(service, { mode: 'video' });
    await c.gp.client.post(`/api/consultations/${c.consultationId}/consent-requests`, { media: 'video' });
    const granted = await c.patient.client.post(`/api/consultations/${c.consultationId}/consents`, { media: 'video', decision: 'granted' });
    expect(granted.status, JSON.stringify(granted.body)).toBe(200);
    const id = await startRecording(c);
    await upload(c, id, OPAQUE);
    await finish(c, id);

    const { data, replay } = await stored(c, id);
    expect(replay).toMatchObject({ mode: 'video', mediaType: 'video/webm' });
    expect(data).toEqual(finaliseWebm(OPAQUE).data);
  });
});

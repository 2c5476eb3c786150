import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keepVideoWithConsent } from './recordings';
import { finaliseWebm } from './webm';

// Issue 15: video recorded while the patient's consent to video was not in force is cut out at
// finalisation (finaliseWebm's keepVideo), and a video track left empty is removed.
//
// opaque-canvas-vp8-opus.webm: real Chromium MediaRecorder output (VP8 track 1 + Opus track 2,
// ~4 s, keyframes at 0 and 2.001 s), made by test/recordings/make-opaque-clip.mjs.
const OPAQUE = readFileSync(path.resolve(import.meta.dirname, '../../../test/recordings/opaque-canvas-vp8-opus.webm'));

const ID = {
  EBML: 0x1a45dfa3,
  DocType: 0x4282,
  Segment: 0x18538067,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackType: 0x83,
  CodecID: 0x86,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  AlphaMode: 0x53c0,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
  BlockGroup: 0xa0,
  Block: 0xa1,
  ReferenceBlock: 0xfb,
  Cues: 0x1c53bb6b,
  CuePoint: 0xbb,
  CueTime: 0xb3,
  CueTrackPositions: 0xb7,
  CueTrack: 0xf7,
  CueClusterPosition: 0xf1,
  CRC32: 0xbf,
};
const MASTERS = new Set([ID.Segment, ID.Tracks, ID.TrackEntry, ID.Video, ID.Cluster, ID.BlockGroup, ID.Cues, ID.CuePoint, ID.CueTrackPositions]);

interface El {
  id: number;
  start: number;
  dataStart: number;
  end: number;
  parent: number;
}

/** A flat scan of the test's own: enters masters whatever their size, stops where the bytes end. */
function scan(buf: Buffer): El[] {
  const out: El[] = [];
  const open: El[] = [];
  let pos = 0;
  while (pos < buf.length) {
    while (open.length > 0 && pos >= open.at(-1)!.end) open.pop();
    const idLen = Math.clz32(buf[pos]!) - 23;
    const s0 = buf[pos + idLen];
    if (idLen > 4 || s0 === undefined || s0 === 0) break;
    const sLen = Math.clz32(s0) - 23;
    let size = s0 & (0xff >> sLen);
    let unknown = size === 0xff >> sLen;
    for (let i = 1; i < sLen; i++) {
      size = size * 256 + buf[pos + idLen + i]!;
      if (buf[pos + idLen + i] !== 0xff) unknown = false;
    }
    const dataStart = pos + idLen + sLen;
    const id = buf.readUIntBE(pos, idLen);
    const end = unknown ? buf.length : dataStart + size;
    const master = MASTERS.has(id);
    if (!master && end > buf.length) break;
    const el = { id, start: pos, dataStart, end, parent: open.at(-1)?.id ?? 0 };
    out.push(el);
    if (master) open.push(el);
    pos = master ? dataStart : end;
  }
  return out;
}
const uint = (buf: Buffer, el: El) => (el.end === el.dataStart ? 0 : buf.readUIntBE(el.dataStart, el.end - el.dataStart));

interface BlockOut {
  track: number;
  time: number;
  key: boolean;
  bytes: Buffer;
}
/** Every block, in file order, with its absolute time (ms: both files use the default TimecodeScale). */
function blocks(buf: Buffer): BlockOut[] {
  const out: BlockOut[] = [];
  let timecode = 0;
  const els = scan(buf);
  for (const [i, e] of els.entries()) {
    if (e.id === ID.Timecode && e.parent === ID.Cluster) timecode = uint(buf, e);
    if (e.id === ID.SimpleBlock && e.parent === ID.Cluster) {
      out.push({ track: buf[e.dataStart]! & 0x7f, time: timecode + buf.readInt16BE(e.dataStart + 1), key: (buf[e.dataStart + 3]! & 0x80) !== 0, bytes: buf.subarray(e.start, e.end) });
    } else if (e.id === ID.BlockGroup) {
      const inside = els.slice(i + 1).filter((c) => c.start < e.end);
      const block = inside.find((c) => c.id === ID.Block)!;
      out.push({
        track: buf[block.dataStart]! & 0x7f,
        time: timecode + buf.readInt16BE(block.dataStart + 1),
        key: !inside.some((c) => c.id === ID.ReferenceBlock),
        bytes: buf.subarray(e.start, e.end),
      });
    }
  }
  return out;
}
const trackEntries = (buf: Buffer) =>
  scan(buf)
    .filter((e) => e.id === ID.TrackEntry)
    .map((t) => {
      const inside = scan(buf.subarray(t.dataStart, t.end));
      const sub = buf.subarray(t.dataStart, t.end);
      return {
        number: uint(sub, inside.find((c) => c.id === ID.TrackNumber)!),
        type: uint(sub, inside.find((c) => c.id === ID.TrackType)!),
        bytes: buf.subarray(t.start, t.end),
      };
    });
/** The Cues: [CueTime, CueTrack] of each CuePoint. */
function cuePoints(buf: Buffer): [number, number][] {
  const els = scan(buf);
  return els
    .filter((e) => e.id === ID.CuePoint)
    .map((cp) => {
      const inside = els.filter((c) => c.start >= cp.dataStart && c.end <= cp.end);
      return [uint(buf, inside.find((c) => c.id === ID.CueTime)!), uint(buf, inside.find((c) => c.id === ID.CueTrack)!)];
    });
}

const tmp = mkdtempSync(path.join(tmpdir(), 'confidant-consent-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** ffprobe's streams and the decoded frame count of each (it decodes every frame). */
function ffprobe(data: Buffer): { type: string; codec: string; frames: number }[] {
  const file = path.join(tmp, `${randomUUID()}.webm`);
  writeFileSync(file, data);
  const json = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,codec_name,nb_read_frames', '-of', 'json', file], {
    encoding: 'utf8',
  });
  return (JSON.parse(json) as { streams: { codec_type: string; codec_name: string; nb_read_frames: string }[] }).streams.map((s) => ({
    type: s.codec_type,
    codec: s.codec_name,
    frames: Number(s.nb_read_frames),
  }));
}

describe('finaliseWebm with keepVideo, on a real Chromium recording', () => {
  const input = blocks(OPAQUE);
  const videoIn = input.filter((b) => b.track === 1);
  const audioIn = input.filter((b) => b.track === 2);

  it('starts from VP8 on track 1 with keyframes at 0 and ~2 s, Opus on track 2', () => {
    expect(trackEntries(OPAQUE).map((t) => [t.number, t.type])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(videoIn.filter((b) => b.key).map((b) => b.time)).toEqual([0, 2001]);
    expect(audioIn.length).toBeGreaterThan(50);
  });

  it('with no video consented: no video block, no video track, every sound block kept; ffprobe sees Opus only', () => {
    const r = finaliseWebm(OPAQUE, { keepVideo: () => false });
    expect(r.hasVideo).toBe(false);
    expect(r.hasAudio).toBe(true);
    const out = blocks(r.data);
    expect(out.filter((b) => b.track === 1)).toEqual([]);
    expect(Buffer.concat(out.map((b) => b.bytes))).toEqual(Buffer.concat(audioIn.map((b) => b.bytes)));
    const entries = trackEntries(r.data);
    expect(entries.map((t) => [t.number, t.type])).toEqual([[2, 2]]);
    // The sound track's entry as recorded, byte for byte.
    expect(entries[0]!.bytes).toEqual(trackEntries(OPAQUE)[1]!.bytes);
    expect(scan(r.data).some((e) => e.id === ID.Video || e.id === ID.AlphaMode)).toBe(false);
    // Seekable on the sound: a CuePoint on track 2 per Cluster.
    expect(cuePoints(r.data).every(([, track]) => track === 2)).toBe(true);
    expect(cuePoints(r.data).length).toBe(r.cues.length);

    const probe = ffprobe(r.data);
    expect(probe.map((s) => `${s.type}/${s.codec}`)).toEqual(['audio/opus']);
    expect(probe[0]!.frames).toBe(ffprobe(OPAQUE).find((s) => s.type === 'audio')!.frames);
    // Finalising the result again, under the same consent, changes nothing.
    expect(finaliseWebm(r.data, { keepVideo: () => false }).data).toEqual(r.data);
  });

  it('with video consented from 1.5 s to 3.2 s: only the video from the first keyframe in the window to its end', () => {
    const r = finaliseWebm(OPAQUE, { keepVideo: (t) => t >= 1500 && t < 3200 });
    expect(r.hasVideo).toBe(true);
    const out = blocks(r.data);
    const videoOut = out.filter((b) => b.track === 1);
    // The delta frames from 1.5 s to the keyframe at 2.001 s cannot be decoded without the frames before: cut too.
    const expected = videoIn.filter((b) => b.time >= 2001 && b.time < 3200);
    expect(expected.length).toBeGreaterThan(10);
    expect(videoOut.map((b) => b.time)).toEqual(expected.map((b) => b.time));
    expect(videoOut[0]!.key).toBe(true);
    expect(Buffer.concat(videoOut.map((b) => b.bytes))).toEqual(Buffer.concat(expected.map((b) => b.bytes)));
    expect(Buffer.concat(out.filter((b) => b.track === 2).map((b) => b.bytes))).toEqual(Buffer.concat(audioIn.map((b) => b.bytes)));
    expect(trackEntries(r.data).map((t) => t.number)).toEqual([1, 2]);

    // Cues: the video keyframe where there is one, the sound elsewhere.
    const cues = cuePoints(r.data);
    expect(cues.filter(([, track]) => track === 1)).toEqual([[2001, 1]]);
    expect(cues.filter(([, track]) => track === 2).length).toBe(r.cues.length - 1);

    // ffprobe decodes exactly the kept frames, and the sound whole.
    const probe = ffprobe(r.data);
    expect(probe.find((s) => s.type === 'video')!.frames).toBe(expected.length);
    expect(probe.find((s) => s.type === 'audio')!.frames).toBe(ffprobe(OPAQUE).find((s) => s.type === 'audio')!.frames);
  });

  it('keeps everything, byte for byte as before, when all video is consented', () => {
    expect(finaliseWebm(OPAQUE, { keepVideo: () => true }).data).toEqual(finaliseWebm(OPAQUE).data);
  });
});

// --- Built files ------------------------------------------------------------------------------

function vint(size: number): Buffer {
  let len = 1;
  while (size >= 2 ** (7 * len) - 1) len++;
  const b = Buffer.alloc(len);
  b.writeUIntBE(size, 0, len);
  b[0]! |= 0x80 >> (len - 1);
  return b;
}
function el(id: number, ...parts: Buffer[]): Buffer {
  const data = Buffer.concat(parts);
  const idb = Buffer.alloc(id > 0xffffff ? 4 : id > 0xffff ? 3 : id > 0xff ? 2 : 1);
  idb.writeUIntBE(id, 0, idb.length);
  return Buffer.concat([idb, vint(data.length), data]);
}
const u8 = (id: number, v: number) => el(id, Buffer.from([v]));
const CRC = el(ID.CRC32, Buffer.from('deadbeef', 'hex'));
const videoTrack = (n: number) =>
  el(ID.TrackEntry, u8(ID.TrackNumber, n), u8(ID.TrackType, 1), el(ID.CodecID, Buffer.from('V_VP8')), el(ID.Video, u8(ID.PixelWidth, 16), u8(ID.PixelHeight, 16)));
const audioTrack = (n: number) => el(ID.TrackEntry, u8(ID.TrackNumber, n), u8(ID.TrackType, 2), el(ID.CodecID, Buffer.from('A_OPUS')));
const simple = (track: number, rel: number, key: boolean) => el(ID.SimpleBlock, Buffer.from([0x80 | track, rel >> 8, rel & 0xff, key ? 0x80 : 0, 7, 7]));
function cluster(timecode: number, ...bs: Buffer[]) {
  return el(ID.Cluster, el(ID.Timecode, Buffer.from([timecode >> 8, timecode & 0xff])), ...bs);
}
function webm(tracks: Buffer, ...clusters: Buffer[]) {
  return Buffer.concat([
    el(ID.EBML, el(ID.DocType, Buffer.from('webm'))),
    Buffer.from('18538067', 'hex'),
    Buffer.from('01ffffffffffffff', 'hex'),
    el(ID.Info, el(ID.TimecodeScale, Buffer.from([0x0f, 0x42, 0x40]))),
    tracks,
    ...clusters,
  ]);
}

describe('finaliseWebm with keepVideo, on built files', () => {
  // Video every 100 ms (keyframes at 0, 400, 800), sound every 100 ms, a Cluster per 400 ms.
  const input = webm(
    el(ID.Tracks, CRC, videoTrack(1), audioTrack(2)),
    ...[0, 400, 800].map((tc) =>
      cluster(tc, ...[0, 100, 200, 300].flatMap((rel) => [simple(1, rel, rel === 0), simple(2, rel, true)])),
    ),
  );
  const videoTimes = (buf: Buffer) => blocks(buf).filter((b) => b.track === 1).map((b) => b.time);

  it('starts a kept run on a keyframe, and after a refused block waits for the next keyframe', () => {
    // Consent from 150 ms; a refused block at 500 ms (as if consent lapsed for a moment).
    const r = finaliseWebm(input, { keepVideo: (t) => t >= 150 && t !== 500 });
    expect(videoTimes(r.data)).toEqual([400, 800, 900, 1000, 1100]);
    expect(blocks(r.data).filter((b) => b.track === 2)).toHaveLength(12);
  });

  it('passes each block time and the last block time (of any track), in ms', () => {
    const seen: [number, number][] = [];
    finaliseWebm(input, { keepVideo: (t, last) => (seen.push([t, last]), true) });
    expect(seen).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100].map((t) => [t, 1100]));
  });

  it('drops the emptied video TrackEntry and the CRC-32 that no longer matches; the sound track is as it was', () => {
    const r = finaliseWebm(input, { keepVideo: () => false });
    const entries = trackEntries(r.data);
    expect(entries.map((t) => t.number)).toEqual([2]);
    expect(entries[0]!.bytes).toEqual(audioTrack(2));
    const tracksEl = scan(r.data).find((e) => e.id === ID.Tracks)!;
    expect(r.data.subarray(tracksEl.start, tracksEl.end)).toEqual(el(ID.Tracks, audioTrack(2)));
    expect(r.durationMs).toBe(1200);
  });

  it('keeps a video track with no blocks when no video was to be cut (Tracks as recorded)', () => {
    const soundOnly = webm(el(ID.Tracks, videoTrack(1), audioTrack(2)), cluster(0, simple(2, 0, true), simple(2, 20, true)));
    const tracksOf = (buf: Buffer) => {
      const t = scan(buf).find((e) => e.id === ID.Tracks)!;
      return buf.subarray(t.start, t.end);
    };
    expect(tracksOf(finaliseWebm(soundOnly).data)).toEqual(tracksOf(soundOnly));
    expect(trackEntries(finaliseWebm(soundOnly, { keepVideo: () => true }).data).map((t) => t.number)).toEqual([2]);
  });
});

describe('keepVideoWithConsent: recording time against the times the patient decided', () => {
  const started = new Date('2025-01-01T10:00:00.000Z');
  const at = (ms: number) => started.getTime() + ms;

  it('keeps a block only when it was certainly captured while consent was in force', () => {
    // Granted 2 s in, withdrawn 10 s in. The last block (at 20 s) arrived 20.5 s in: the recorder
    // may have started up to 0.5 s after the recording was created, so a block at t was captured
    // between started + t and started + t + 0.5 s.
    const keep = keepVideoWithConsent([{ from: at(2_000), to: at(10_000) }], started, new Date(at(20_500)));
    expect(keep(1_999, 20_000)).toBe(false);
    expect(keep(2_000, 20_000)).toBe(true);
    expect(keep(9_499, 20_000)).toBe(true);
    expect(keep(9_500, 20_000)).toBe(false); // might have been captured at 10.0 s, after the withdrawal
    expect(keep(12_000, 20_000)).toBe(false);
  });

  it('keeps nothing without consent, everything inside an open window', () => {
    expect(keepVideoWithConsent([], started, new Date(at(5_000)))(1_000, 4_000)).toBe(false);
    const open = keepVideoWithConsent([{ from: at(-60_000), to: Infinity }], started, new Date(at(5_000)));
    expect(open(0, 4_000)).toBe(true);
    expect(open(4_000, 4_000)).toBe(true);
  });

  it('uses no lag when the blocks reached the server sooner than their timeline says (never a negative one)', () => {
    const keep = keepVideoWithConsent([{ from: at(0), to: at(3_000) }], started, new Date(at(100)));
    expect(keep(2_999, 4_000)).toBe(true);
    expect(keep(3_000, 4_000)).toBe(false);
  });

  it('keeps video in each of several windows, none between them', () => {
    const keep = keepVideoWithConsent(
      [
        { from: at(1_000), to: at(2_000) },
        { from: at(5_000), to: Infinity },
      ],
      started.toISOString(),
      null,
    );
    expect([500, 1_500, 3_000, 5_000, 60_000].map((t) => keep(t, 60_000))).toEqual([false, true, false, true, true]);
  });
});

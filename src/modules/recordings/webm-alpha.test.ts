import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalBlobStore } from './blob-store';
import { recordingBlobName, sealAndStore, type RecordingDeps } from './recordings';
import { readRange } from './sealed-segments';
import { finaliseWebm } from './webm';

// Issue 14: Chrome's MediaRecorder marks its VP8 track AlphaMode=1 even when no frame carries alpha
// (no BlockAdditions), and WebKit refuses to play such a file. The finaliser clears the flag then.
//
// opaque-canvas-vp8-opus.webm: real, raw Chromium MediaRecorder output recorded the way
// web/src/call/recorder.ts records (opaque canvas, VP8 + Opus, 1 s chunks); made by
// test/recordings/make-opaque-clip.mjs. demo-consultation.webm: Chromium recording a canvas with an
// alpha channel, so its VP8 frames are BlockGroups with BlockAdditions (scripts/make-demo-clip.mjs).
const OPAQUE = readFileSync(path.resolve(import.meta.dirname, '../../../test/recordings/opaque-canvas-vp8-opus.webm'));
const WITH_ALPHA = readFileSync(path.resolve(import.meta.dirname, '../../demo/assets/demo-consultation.webm'));

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
  BlockAdditions: 0x75a1,
  BlockMore: 0xa6,
  BlockAddID: 0xee,
  BlockAdditional: 0xa5,
  CRC32: 0xbf,
  Void: 0xec,
};
/** Masters entered by the scan below; a BlockGroup is entered too, so its BlockAdditions are seen. */
const MASTERS = new Set([ID.Segment, ID.Tracks, ID.TrackEntry, ID.Video, ID.Cluster, ID.BlockGroup]);

interface El {
  id: number;
  start: number;
  dataStart: number;
  end: number;
  /** The element's parent, by ID (0 at the top). */
  parent: number;
}

/** A flat scan of the test's own: enters masters whatever their size, stops at the first element the bytes do not complete. */
function scan(buf: Buffer): El[] {
  const out: El[] = [];
  const open: El[] = [];
  let pos = 0;
  while (pos < buf.length) {
    while (open.length > 0 && pos >= open.at(-1)!.end) open.pop();
    const b0 = buf[pos]!;
    const idLen = Math.clz32(b0) - 23;
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
const alphaModes = (buf: Buffer) => scan(buf).filter((e) => e.id === ID.AlphaMode && e.parent === ID.Video).map((e) => uint(buf, e));
const additions = (buf: Buffer) => scan(buf).filter((e) => e.id === ID.BlockAdditions).length;
/** Every block (SimpleBlock, or a BlockGroup whole), as bytes, in file order. */
const blocks = (buf: Buffer) =>
  scan(buf)
    .filter((e) => (e.id === ID.SimpleBlock && e.parent === ID.Cluster) || e.id === ID.BlockGroup)
    .map((e) => buf.subarray(e.start, e.end));
const tracksOf = (buf: Buffer) => {
  const t = scan(buf).find((e) => e.id === ID.Tracks)!;
  return buf.subarray(t.start, t.end);
};

interface Probe {
  streams: { codec_type: string; codec_name: string; nb_read_frames: string; tags?: Record<string, string> }[];
}
const tmp = mkdtempSync(path.join(tmpdir(), 'confidant-alpha-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** ffprobe's view of a file, every frame counted (it decodes them). */
function ffprobe(data: Buffer): Probe {
  const file = path.join(tmp, `${randomUUID()}.webm`);
  writeFileSync(file, data);
  const json = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,codec_name,nb_read_frames:stream_tags', '-of', 'json', file], {
    encoding: 'utf8',
  });
  return JSON.parse(json) as Probe;
}
const framesByType = (p: Probe) => Object.fromEntries(p.streams.map((s) => [s.codec_type, Number(s.nb_read_frames)]));

describe('finalising a Chrome recording of an opaque canvas (AlphaMode=1, no alpha in any frame)', () => {
  it('starts from a raw file whose VP8 track says AlphaMode=1 and whose blocks carry no BlockAdditions', () => {
    expect(alphaModes(OPAQUE)).toEqual([1]);
    expect(additions(OPAQUE)).toBe(0);
    expect(ffprobe(OPAQUE).streams.find((s) => s.codec_type === 'video')?.tags?.alpha_mode).toBe('1');
  });

  it('stores a recording with AlphaMode 0, every block intact, that ffprobe reads as video and audio with every frame', async () => {
    const blobs = createLocalBlobStore(path.join(tmp, 'blobs'));
    const deps = { blobs } as unknown as RecordingDeps;
    const recordingId = randomUUID();
    const key = randomBytes(32);
    const result = await sealAndStore(deps, recordingId, key, OPAQUE);
    expect(result.mediaType).toBe('video/webm');

    // What is stored, opened again the way a replay opens it.
    const reader = await blobs.open(recordingBlobName(recordingId));
    let stored: Buffer;
    try {
      stored = await readRange({ key, recordingId, plaintextSize: result.plaintextSize, reader, start: 0, endInclusive: result.plaintextSize - 1 });
    } finally {
      await reader.close();
    }
    expect(stored).toEqual(finaliseWebm(OPAQUE).data);

    expect(alphaModes(stored)).toEqual([0]);
    // Only the flag changed in Tracks: sizes and every other byte as recorded.
    const before = tracksOf(OPAQUE);
    const after = tracksOf(stored);
    expect(after.length).toBe(before.length);
    const differing = [...after.keys()].filter((i) => after[i] !== before[i]);
    expect(differing).toHaveLength(1);
    expect(before[differing[0]!]).toBe(1);
    expect(after[differing[0]!]).toBe(0);

    const inBlocks = blocks(OPAQUE);
    expect(inBlocks.length).toBeGreaterThan(50);
    expect(Buffer.concat(blocks(stored))).toEqual(Buffer.concat(inBlocks));

    const probeIn = ffprobe(OPAQUE);
    const probeOut = ffprobe(stored);
    expect(probeOut.streams.map((s) => `${s.codec_type}/${s.codec_name}`).sort()).toEqual(['audio/opus', 'video/vp8']);
    expect(probeOut.streams.find((s) => s.codec_type === 'video')?.tags?.alpha_mode ?? '0').toBe('0');
    expect(framesByType(probeOut)).toEqual(framesByType(probeIn));
    expect(framesByType(probeOut).video).toBeGreaterThan(0);
    expect(framesByType(probeOut).audio).toBeGreaterThan(0);
  });

  it('is idempotent: finalising the output again gives the same bytes', () => {
    const once = finaliseWebm(OPAQUE).data;
    expect(finaliseWebm(once).data).toEqual(once);
  });
});

describe('finalising a recording whose frames do carry alpha', () => {
  it('keeps AlphaMode=1 on a Chrome recording of a canvas with alpha (BlockAdditions on every VP8 frame)', () => {
    expect(alphaModes(WITH_ALPHA)).toEqual([1]);
    expect(additions(WITH_ALPHA)).toBeGreaterThan(0);
    const out = finaliseWebm(WITH_ALPHA).data;
    expect(alphaModes(out)).toEqual([1]);
    expect(tracksOf(out)).toEqual(tracksOf(WITH_ALPHA));
  });
});

// --- Built files: one VP8 track (or two), AlphaMode=1, blocks with or without BlockAdditions --------

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
const UNKNOWN = Buffer.from('01ffffffffffffff', 'hex');
const CRC = el(ID.CRC32, Buffer.from('deadbeef', 'hex')); // a CRC-32 that would no longer match anyway

function videoTrack(number: number, crc = false): Buffer {
  return el(
    ID.TrackEntry,
    ...(crc ? [CRC] : []),
    u8(ID.TrackNumber, number),
    u8(ID.TrackType, 1),
    el(ID.CodecID, Buffer.from('V_VP8')),
    el(ID.Video, ...(crc ? [CRC] : []), u8(ID.PixelWidth, 16), u8(ID.PixelHeight, 16), u8(ID.AlphaMode, 1)),
  );
}
/** A Block's data: track, int16 time, flags, a few frame bytes. */
const blockData = (track: number, rel: number, key: boolean) => Buffer.from([0x80 | track, rel >> 8, rel & 0xff, key ? 0x80 : 0, 1, 2, 3]);
const simpleBlock = (track: number, rel: number, key: boolean) => el(ID.SimpleBlock, blockData(track, rel, key));
const alphaBlock = (track: number, rel: number) =>
  el(ID.BlockGroup, el(ID.Block, blockData(track, rel, true)), el(ID.BlockAdditions, el(ID.BlockMore, u8(ID.BlockAddID, 1), el(ID.BlockAdditional, Buffer.from([9, 9])))));

function webm(tracks: Buffer[], blocksIn: Buffer[], opts: { tracksCrc?: boolean } = {}): Buffer {
  return Buffer.concat([
    el(ID.EBML, el(ID.DocType, Buffer.from('webm'))),
    Buffer.from('18538067', 'hex'),
    UNKNOWN,
    el(ID.Info, el(ID.TimecodeScale, Buffer.from([0x0f, 0x42, 0x40]))),
    el(ID.Tracks, ...(opts.tracksCrc ? [CRC] : []), ...tracks),
    Buffer.from('1f43b675', 'hex'),
    UNKNOWN,
    u8(ID.Timecode, 0),
    ...blocksIn,
  ]);
}

describe('finaliseWebm and AlphaMode', () => {
  it('keeps AlphaMode=1 when a block carries BlockAdditions', () => {
    const input = webm([videoTrack(1)], [simpleBlock(1, 0, true), alphaBlock(1, 33), simpleBlock(1, 66, false)]);
    const out = finaliseWebm(input).data;
    expect(alphaModes(out)).toEqual([1]);
    expect(tracksOf(out)).toEqual(tracksOf(input));
  });

  it('sets AlphaMode to 0 when no block carries BlockAdditions, in place', () => {
    const input = webm([videoTrack(1)], [simpleBlock(1, 0, true), simpleBlock(1, 33, false)]);
    const out = finaliseWebm(input).data;
    expect(alphaModes(out)).toEqual([0]);
    expect(tracksOf(out).length).toBe(tracksOf(input).length);
    expect(blocks(out)).toEqual(blocks(input));
  });

  it('clears the flag only on the track whose blocks carry no alpha', () => {
    const input = webm([videoTrack(1), videoTrack(2)], [simpleBlock(1, 0, true), alphaBlock(2, 0), simpleBlock(1, 33, false)]);
    expect(alphaModes(finaliseWebm(input).data)).toEqual([0, 1]);
  });

  it('turns the CRC-32s over a cleared flag into Voids of the same size', () => {
    const input = webm([videoTrack(1, true)], [simpleBlock(1, 0, true)], { tracksCrc: true });
    const out = finaliseWebm(input).data;
    expect(alphaModes(out)).toEqual([0]);
    const els = scan(tracksOf(out));
    expect(els.filter((e) => e.id === ID.CRC32)).toHaveLength(0);
    expect(els.filter((e) => e.id === ID.Void).map((e) => e.end - e.start)).toEqual([6, 6, 6]);
    expect(tracksOf(out).length).toBe(tracksOf(input).length);

    // With alpha in use nothing changes, CRC-32s included.
    const kept = webm([videoTrack(1, true)], [alphaBlock(1, 0)], { tracksCrc: true });
    expect(tracksOf(finaliseWebm(kept).data)).toEqual(tracksOf(kept));
  });
});

/**
 * Finalises a WebM file as written by a browser's MediaRecorder, so that players can show its
 * duration and seek in it.
 *
 * Chrome's MediaRecorder writes a live stream: the Segment and usually every Cluster have an
 * unknown size, Info has no Duration, and there is neither a SeekHead nor Cues. A <video> element
 * then reports duration Infinity, no seekable range, and can seek only by reading the file from the
 * start. The server receives the recording as chunks and
 * concatenates them; finaliseWebm rewrites that into
 *
 *   EBML header (copied)
 *   Segment (known size)
 *     SeekHead     → Info, Tracks, [Tags], Cues
 *     Info         copied, any Duration replaced by the measured one
 *     Tracks       copied; AlphaMode cleared on a track whose blocks carry no alpha (below)
 *     [Tags, Chapters, Attachments  copied]
 *     Cluster…     known sizes; Timecode, SimpleBlock and BlockGroup children only
 *     Cues         a CuePoint per Cluster that holds a keyframe of the cue track (the video track
 *                  if any, else the audio track), timed at that keyframe
 *
 * Why not a CuePoint on every Cluster: a player seeks to the last CuePoint at or before the target
 * and decodes from there. Chrome starts a Cluster per MediaRecorder timeslice, not per keyframe,
 * and its VP8 keyframes can be many seconds apart, so most Clusters open with delta frames; with a
 * CuePoint on each, Chromium shows a stale, wrong picture after a seek (checked: seeking to 2 s
 * showed the frame from 0.05 s). `cues` in the result still lists every Cluster, as a byte → time
 * index.
 *
 * A truncated input (the recorder's tab or the upload died mid-chunk) is expected: every complete
 * block is kept and the partial tail is dropped. Top-level elements it does not need (Void, CRC-32,
 * old SeekHead and Cues, anything unknown) are dropped rather than refused.
 *
 * Chrome's MediaRecorder marks its VP8 track AlphaMode=1 even when no frame carries alpha data
 * (BlockAdditions), as when it records an opaque canvas, and WebKit's GStreamer pipeline refuses to
 * play such a file (issue 14; clearing the flag alone made it play). So AlphaMode is set to 0 on
 * every track none of whose blocks has BlockAdditions. The value bytes are zeroed in place, so no
 * size or offset changes; a CRC-32 over them becomes a Void.
 *
 * Video that may not be kept (the patient's consent to video was not in force: `keepVideo`, given by
 * the caller) is cut out block by block. A kept run of a video track starts on a keyframe (the delta
 * frames after a cut would be decoded from a picture that is gone), a Cluster left empty is
 * dropped, and a video track left with no block is removed from Tracks, so a recording made with
 * consent to sound only is a file with no video track at all. Where video was cut but some is
 * left, Clusters with no video keyframe get a CuePoint on the audio track, so a player can seek in
 * the stretches that have sound only.
 *
 * Everything is in memory: the output is one Buffer.concat over slices of the input, so the cost
 * is one pass to parse and one copy to write.
 */

/** A Cluster of the output and its timestamp. */
export interface WebmCue {
  timeMs: number;
  /** Absolute byte offset of the Cluster element in the output. */
  offset: number;
}

export interface FinalisedWebm {
  data: Buffer;
  durationMs: number;
  /**
   * One per Cluster, ascending: an index of which bytes hold which seconds. (The file's own Cues
   * element is sparser: it lists only the Clusters a player can start decoding from; see below.)
   */
  cues: WebmCue[];
  hasVideo: boolean;
  hasAudio: boolean;
}

export interface FinaliseOptions {
  /**
   * Whether a video block may be kept, from its time and the time of the file's last block (of any
   * track), both in ms of the file's timeline. Without it every block is kept.
   */
  keepVideo?: (timeMs: number, lastBlockMs: number) => boolean;
}

export class WebmError extends Error {
  constructor(
    readonly code: 'not_webm' | 'no_media',
    message: string,
  ) {
    super(message);
    this.name = 'WebmError';
  }
}

// Element IDs, with their marker bits, as the Matroska spec writes them.
const ID = {
  EBML: 0x1a45dfa3,
  DocType: 0x4282,
  Segment: 0x18538067,
  SeekHead: 0x114d9b74,
  Seek: 0x4dbb,
  SeekID: 0x53ab,
  SeekPosition: 0x53ac,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  Duration: 0x4489,
  MuxingApp: 0x4d80,
  WritingApp: 0x5741,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackType: 0x83,
  Video: 0xe0,
  AlphaMode: 0x53c0,
  DefaultDuration: 0x23e383,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
  BlockGroup: 0xa0,
  Block: 0xa1,
  BlockDuration: 0x9b,
  ReferenceBlock: 0xfb,
  BlockAdditions: 0x75a1,
  Cues: 0x1c53bb6b,
  CuePoint: 0xbb,
  CueTime: 0xb3,
  CueTrackPositions: 0xb7,
  CueTrack: 0xf7,
  CueClusterPosition: 0xf1,
  Tags: 0x1254c367,
  Chapters: 0x1043a770,
  Attachments: 0x1941a469,
  Void: 0xec,
  CRC32: 0xbf,
} as const;

/** Children of Segment: an unknown-size Cluster ends where one of these (or the next EBML/Segment) starts. */
const SEGMENT_CHILDREN = new Set<number>([
  ID.SeekHead,
  ID.Info,
  ID.Tracks,
  ID.Cluster,
  ID.Cues,
  ID.Tags,
  ID.Chapters,
  ID.Attachments,
  ID.EBML,
  ID.Segment,
]);

/** Top-level elements copied through unchanged (when complete). */
const COPIED = new Set<number>([ID.Tags, ID.Chapters, ID.Attachments]);

const TRACK_VIDEO = 1;
const TRACK_AUDIO = 2;
const DEFAULT_TIMECODE_SCALE = 1_000_000; // ns per tick: ticks are milliseconds

// ---------------------------------------------------------------------------------------------
// Reading

interface Header {
  id: number;
  /** Offset of the element's first byte. */
  start: number;
  /** Offset of its data. */
  dataStart: number;
  /** Data size; null when unknown (all value bits set). */
  size: number | null;
}

/**
 * Reads an element header at pos, or null when the bytes up to `limit` end first or the header is
 * malformed (an ID longer than 4 bytes or a size longer than 8): both mean "stop reading here".
 */
function readHeader(buf: Buffer, pos: number, limit: number): Header | null {
  if (pos >= limit) return null;
  const b0 = buf[pos]!;
  const idLen = b0 >= 0x80 ? 1 : b0 >= 0x40 ? 2 : b0 >= 0x20 ? 3 : b0 >= 0x10 ? 4 : 0;
  if (idLen === 0 || pos + idLen > limit) return null;
  let id = 0;
  for (let i = 0; i < idLen; i++) id = id * 256 + buf[pos + i]!;

  const sPos = pos + idLen;
  if (sPos >= limit) return null;
  const s0 = buf[sPos]!;
  if (s0 === 0) return null;
  const sLen = Math.clz32(s0) - 23; // 1..8
  if (sPos + sLen > limit) return null;
  const mask = 0xff >> sLen;
  let value = s0 & mask;
  let allOnes = value === mask;
  for (let i = 1; i < sLen; i++) {
    const b = buf[sPos + i]!;
    if (b !== 0xff) allOnes = false;
    value = value * 256 + b;
  }
  return { id, start: pos, dataStart: sPos + sLen, size: allOnes ? null : value };
}

function readUint(buf: Buffer, start: number, end: number): number {
  let v = 0;
  for (let i = start; i < end; i++) v = v * 256 + buf[i]!;
  return v;
}

function readFloat(buf: Buffer, start: number, end: number): number {
  const len = end - start;
  if (len === 4) return buf.readFloatBE(start);
  if (len === 8) return buf.readDoubleBE(start);
  return 0;
}

/** Iterates the complete, known-size children of a master element's data [start, end). */
function* children(buf: Buffer, start: number, end: number): Generator<Header & { end: number }> {
  let pos = start;
  while (pos < end) {
    const h = readHeader(buf, pos, end);
    if (!h || h.size === null || h.dataStart + h.size > end) return;
    const childEnd = h.dataStart + h.size;
    yield { ...h, end: childEnd };
    pos = childEnd;
  }
}

interface TrackInfo {
  number: number;
  type: number;
  /** ns, 0 when absent. */
  defaultDuration: number;
}

function parseTracks(buf: Buffer, start: number, end: number): TrackInfo[] {
  const tracks: TrackInfo[] = [];
  for (const entry of children(buf, start, end)) {
    if (entry.id !== ID.TrackEntry) continue;
    const t: TrackInfo = { number: 0, type: 0, defaultDuration: 0 };
    for (const c of children(buf, entry.dataStart, entry.end)) {
      if (c.id === ID.TrackNumber) t.number = readUint(buf, c.dataStart, c.end);
      else if (c.id === ID.TrackType) t.type = readUint(buf, c.dataStart, c.end);
      else if (c.id === ID.DefaultDuration) t.defaultDuration = readUint(buf, c.dataStart, c.end);
    }
    if (t.number > 0) tracks.push(t);
  }
  return tracks;
}

/**
 * The Tracks element [start, end) of buf, with AlphaMode set to 0 on every track not in
 * `withAlpha`; the same bytes when there is nothing to clear. CRC-32 elements of the masters
 * around a cleared value (Tracks, TrackEntry, Video) are turned into Voids of the same size: one
 * ID byte, as both IDs are one byte long.
 */
function clearUnusedAlpha(buf: Buffer, tracks: { start: number; end: number; dataStart: number }, withAlpha: ReadonlySet<number>): Buffer {
  const zero: { start: number; end: number }[] = [];
  const crcs: number[] = [];
  const tracksCrcs: number[] = [];
  for (const entry of children(buf, tracks.dataStart, tracks.end)) {
    if (entry.id === ID.CRC32) tracksCrcs.push(entry.start);
    if (entry.id !== ID.TrackEntry) continue;
    let number = 0;
    const entryCrcs: number[] = [];
    const alpha: { start: number; end: number; crcs: number[] }[] = [];
    for (const c of children(buf, entry.dataStart, entry.end)) {
      if (c.id === ID.TrackNumber) number = readUint(buf, c.dataStart, c.end);
      else if (c.id === ID.CRC32) entryCrcs.push(c.start);
      else if (c.id === ID.Video) {
        const videoCrcs: number[] = [];
        for (const v of children(buf, c.dataStart, c.end)) {
          if (v.id === ID.CRC32) videoCrcs.push(v.start);
          else if (v.id === ID.AlphaMode && readUint(buf, v.dataStart, v.end) !== 0) alpha.push({ start: v.dataStart, end: v.end, crcs: videoCrcs });
        }
      }
    }
    if (alpha.length === 0 || withAlpha.has(number)) continue;
    for (const a of alpha) {
      zero.push(a);
      crcs.push(...a.crcs);
    }
    crcs.push(...entryCrcs);
  }
  if (zero.length === 0) return buf.subarray(tracks.start, tracks.end);
  const out = Buffer.from(buf.subarray(tracks.start, tracks.end));
  for (const z of zero) out.fill(0, z.start - tracks.start, z.end - tracks.start);
  for (const at of [...crcs, ...tracksCrcs]) out[at - tracks.start] = ID.Void;
  return out;
}

/**
 * A Tracks element (as returned by clearUnusedAlpha) without the TrackEntries of `drop`; the same
 * bytes when there is none to drop. Its CRC-32, if any, would no longer match and is left out.
 */
function withoutTracks(tracksEl: Buffer, drop: ReadonlySet<number>): Buffer {
  if (drop.size === 0) return tracksEl;
  const head = readHeader(tracksEl, 0, tracksEl.length)!;
  const parts: Buffer[] = [];
  for (const entry of children(tracksEl, head.dataStart, tracksEl.length)) {
    if (entry.id === ID.CRC32) continue;
    if (entry.id === ID.TrackEntry) {
      let number = 0;
      for (const c of children(tracksEl, entry.dataStart, entry.end)) if (c.id === ID.TrackNumber) number = readUint(tracksEl, c.dataStart, c.end);
      if (drop.has(number)) continue;
    }
    parts.push(tracksEl.subarray(entry.start, entry.end));
  }
  return Buffer.concat(element(ID.Tracks, parts));
}

/** The track number, relative timestamp and flags of a Block/SimpleBlock's data, or null if it is too short. */
function blockHead(buf: Buffer, start: number, end: number): { track: number; rel: number; flags: number } | null {
  const b0 = buf[start];
  if (b0 === undefined || b0 === 0) return null;
  const len = Math.clz32(b0) - 23;
  if (start + len + 3 > end) return null; // track number, int16 timestamp, flags
  let track = b0 & (0xff >> len);
  for (let i = 1; i < len; i++) track = track * 256 + buf[start + i]!;
  return { track, rel: buf.readInt16BE(start + len), flags: buf[start + len + 2]! };
}

/** A block as read: a SimpleBlock or BlockGroup element, whole, and what the finaliser needs of it. */
interface BlockIn {
  start: number;
  end: number;
  track: number;
  /** Absolute, in ticks. */
  time: number;
  /** BlockDuration, or -1. */
  duration: number;
  key: boolean;
  /** Carries BlockAdditions (alpha, for VP8/VP9). */
  alpha: boolean;
}

interface ClusterIn {
  timecode: number;
  blocks: BlockIn[];
}

interface ClusterOut {
  timecode: number;
  /**
   * The kept SimpleBlock/BlockGroup elements, whole (header and data), as [start, end) byte ranges of
   * the input, flattened; adjacent blocks share a range, so a Cluster is usually one slice.
   */
  ranges: number[];
  /** Bytes in ranges. */
  size: number;
  /** Track number → timestamp of the cluster's first keyframe on that track. */
  firstKey: Map<number, number>;
}

interface TrackStats {
  first: number;
  last: number;
  count: number;
  /** BlockDuration of the last block when it had one, else -1. */
  lastDuration: number;
}

// ---------------------------------------------------------------------------------------------
// Writing

function idBytes(id: number): Buffer {
  const len = id > 0xffffff ? 4 : id > 0xffff ? 3 : id > 0xff ? 2 : 1;
  const out = Buffer.alloc(len);
  out.writeUIntBE(id, 0, len);
  return out;
}

/** A size as an EBML vint, in `width` bytes or the fewest that do not read as "unknown". */
function sizeBytes(size: number, width?: number): Buffer {
  let len = width ?? 1;
  if (width === undefined) while (len < 8 && size >= 2 ** (7 * len) - 1) len++;
  const out = Buffer.alloc(len);
  let v = size;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  out[0]! |= 0x80 >> (len - 1);
  return out;
}

function uintBytes(value: number, width?: number): Buffer {
  let len = width ?? 1;
  if (width === undefined) while (len < 8 && value >= 2 ** (8 * len)) len++;
  const out = Buffer.alloc(len);
  let v = value;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

function element(id: number, parts: Buffer[]): Buffer[] {
  let size = 0;
  for (const p of parts) size += p.length;
  return [idBytes(id), sizeBytes(size), ...parts];
}

function uintElement(id: number, value: number, width?: number): Buffer {
  return Buffer.concat(element(id, [uintBytes(value, width)]));
}

function floatElement(id: number, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(value);
  return Buffer.concat(element(id, [b]));
}

function keep(cluster: ClusterOut, start: number, end: number) {
  const r = cluster.ranges;
  if (r.length > 0 && r[r.length - 1] === start) r[r.length - 1] = end;
  else r.push(start, end);
  cluster.size += end - start;
}

// ---------------------------------------------------------------------------------------------

export function finaliseWebm(input: Buffer, opts: FinaliseOptions = {}): FinalisedWebm {
  const buf = input;
  const len = buf.length;
  const stats = new Map<number, TrackStats>(); // per track number, filled by noteBlock

  // EBML header, which must open the file.
  const ebml = readHeader(buf, 0, len);
  if (!ebml || ebml.id !== ID.EBML || ebml.size === null || ebml.dataStart + ebml.size > len) {
    throw new WebmError('not_webm', 'no EBML header');
  }
  const ebmlEnd = ebml.dataStart + ebml.size;
  for (const c of children(buf, ebml.dataStart, ebmlEnd)) {
    if (c.id === ID.DocType) {
      const docType = buf.toString('latin1', c.dataStart, c.end).replace(/\0+$/, '');
      if (docType !== 'webm' && docType !== 'matroska') throw new WebmError('not_webm', `DocType is ${docType}`);
    }
  }

  // The Segment, after any Void.
  let pos = ebmlEnd;
  let segment: Header | null = null;
  for (;;) {
    const h = readHeader(buf, pos, len);
    if (!h) break;
    if (h.id === ID.Segment) {
      segment = h;
      break;
    }
    if (h.size === null) break;
    pos = h.dataStart + h.size;
  }
  if (!segment) throw new WebmError('not_webm', 'no Segment');
  const segEnd = segment.size === null ? len : Math.min(len, segment.dataStart + segment.size);

  let info: { start: number; end: number } | null = null;
  let tracksRange: { start: number; end: number; dataStart: number } | null = null;
  const copied: Buffer[] = [];
  const clustersIn: ClusterIn[] = [];
  let lastTimecode = 0;

  // The Segment's children. Anything incomplete ends the walk: it is the truncated tail.
  pos = segment.dataStart;
  walk: while (pos < segEnd) {
    const h = readHeader(buf, pos, segEnd);
    if (!h) break;
    if (h.id === ID.EBML || h.id === ID.Segment) break; // a second file appended: keep the first

    if (h.id === ID.Cluster) {
      const knownEnd = h.size === null ? null : h.dataStart + h.size;
      const limit = knownEnd === null ? segEnd : Math.min(knownEnd, segEnd);
      const cluster: ClusterIn = { timecode: lastTimecode, blocks: [] };
      let sawTimecode = false;
      let p = h.dataStart;
      let complete = true;
      while (p < limit) {
        const c = readHeader(buf, p, limit);
        if (!c) {
          complete = false;
          break;
        }
        if (knownEnd === null && SEGMENT_CHILDREN.has(c.id)) break; // the unknown-size cluster ends here
        if (c.size === null || c.dataStart + c.size > limit) {
          complete = false;
          break;
        }
        const cEnd = c.dataStart + c.size;
        if (c.id === ID.Timecode) {
          if (!sawTimecode) {
            cluster.timecode = readUint(buf, c.dataStart, cEnd);
            sawTimecode = true;
          }
        } else if (c.id === ID.SimpleBlock) {
          const head = blockHead(buf, c.dataStart, cEnd);
          if (head) {
            const time = cluster.timecode + head.rel;
            cluster.blocks.push({ start: c.start, end: cEnd, track: head.track, time, duration: -1, key: (head.flags & 0x80) !== 0, alpha: false });
          }
        } else if (c.id === ID.BlockGroup) {
          let head: ReturnType<typeof blockHead> = null;
          let blockDuration = -1;
          let key = true; // a Block is a keyframe unless it references another
          let additions = false;
          for (const g of children(buf, c.dataStart, cEnd)) {
            if (g.id === ID.Block) head = blockHead(buf, g.dataStart, g.end);
            else if (g.id === ID.BlockDuration) blockDuration = readUint(buf, g.dataStart, g.end);
            else if (g.id === ID.ReferenceBlock) key = false;
            else if (g.id === ID.BlockAdditions) additions = true;
          }
          if (head) {
            const time = cluster.timecode + head.rel;
            cluster.blocks.push({ start: c.start, end: cEnd, track: head.track, time, duration: blockDuration, key, alpha: additions });
          }
        }
        // Position, PrevSize, CRC-32, Void, SilentTracks, unknown: dropped (positions change anyway).
        p = cEnd;
      }
      if (cluster.blocks.length > 0) clustersIn.push(cluster);
      lastTimecode = cluster.timecode;
      if (!complete) break walk;
      pos = knownEnd === null ? p : knownEnd;
      continue;
    }

    // Any other Segment child: only known sizes can be skipped or copied.
    if (h.size === null || h.dataStart + h.size > segEnd) break;
    const end = h.dataStart + h.size;
    if (h.id === ID.Info && !info) info = { start: h.dataStart, end };
    else if (h.id === ID.Tracks && !tracksRange) tracksRange = { start: h.start, end, dataStart: h.dataStart };
    else if (COPIED.has(h.id)) copied.push(buf.subarray(h.start, end));
    // SeekHead and Cues are rebuilt; Void, CRC-32 and unknown elements are dropped.
    pos = end;
  }

  if (!tracksRange) throw new WebmError('not_webm', 'no Tracks');
  const tracks = parseTracks(buf, tracksRange.dataStart, tracksRange.end);

  let timecodeScale = DEFAULT_TIMECODE_SCALE;
  if (info) {
    for (const c of children(buf, info.start, info.end)) {
      if (c.id === ID.TimecodeScale) timecodeScale = readUint(buf, c.dataStart, c.end) || DEFAULT_TIMECODE_SCALE;
    }
  }
  const ticksToMs = timecodeScale / 1_000_000;

  // The blocks to keep: all of them, less the video that may not be kept.
  const videoTracks = new Set(tracks.filter((t) => t.type === TRACK_VIDEO).map((t) => t.number));
  const keepVideo = opts.keepVideo;
  let lastBlock = -Infinity;
  if (keepVideo) for (const cl of clustersIn) for (const b of cl.blocks) lastBlock = Math.max(lastBlock, b.time);
  /** Video tracks whose kept run is open: its first block was a keyframe and nothing since was cut. */
  const running = new Set<number>();
  let videoCut = false;
  const clusters: ClusterOut[] = [];
  /** Tracks with a kept block that carries BlockAdditions (alpha, for VP8/VP9). */
  const withAlpha = new Set<number>();
  for (const cl of clustersIn) {
    const cluster: ClusterOut = { timecode: cl.timecode, ranges: [], size: 0, firstKey: new Map() };
    for (const b of cl.blocks) {
      if (keepVideo && videoTracks.has(b.track)) {
        if (!keepVideo(b.time * ticksToMs, lastBlock * ticksToMs)) {
          running.delete(b.track);
          videoCut = true;
          continue;
        }
        if (!running.has(b.track)) {
          if (!b.key) {
            videoCut = true;
            continue;
          }
          running.add(b.track);
        }
      }
      keep(cluster, b.start, b.end);
      if (b.alpha) withAlpha.add(b.track);
      noteBlock(cluster, b.track, b.time, b.duration, b.key);
    }
    if (cluster.size > 0) clusters.push(cluster);
  }

  if (clusters.length === 0) throw new WebmError('no_media', 'no complete media blocks');

  // Timing.
  let durationTicks = 0;
  for (const [number, s] of stats) {
    const track = tracks.find((t) => t.number === number);
    const frame =
      s.lastDuration >= 0
        ? s.lastDuration
        : track && track.defaultDuration > 0
          ? track.defaultDuration / timecodeScale
          : s.count > 1
            ? (s.last - s.first) / (s.count - 1)
            : 0;
    durationTicks = Math.max(durationTicks, s.last + frame);
  }

  const withBlocks = (type: number) => tracks.find((t) => t.type === type && stats.has(t.number));
  const video = withBlocks(TRACK_VIDEO);
  const audio = withBlocks(TRACK_AUDIO);
  const cueTrack = (video ?? audio)?.number ?? stats.keys().next().value!;
  // Where video was cut and some is left, the stretches without it are sought by their sound.
  const soundCueTrack = video && videoCut && audio ? audio.number : null;
  // A video track left with no block goes (only when video was to be cut: otherwise Tracks is as recorded).
  const emptied = new Set(keepVideo ? [...videoTracks].filter((n) => !stats.has(n)) : []);

  // Info: the input's children less Duration and CRC-32 (which would no longer match), plus Duration.
  const infoParts: Buffer[] = [];
  if (info) {
    for (const c of children(buf, info.start, info.end)) {
      if (c.id !== ID.Duration && c.id !== ID.CRC32 && c.id !== ID.Void) infoParts.push(buf.subarray(c.start, c.end));
    }
  } else {
    infoParts.push(uintElement(ID.TimecodeScale, DEFAULT_TIMECODE_SCALE));
    infoParts.push(Buffer.concat(element(ID.MuxingApp, [Buffer.from('Confidant')])));
    infoParts.push(Buffer.concat(element(ID.WritingApp, [Buffer.from('Confidant')])));
  }
  infoParts.push(floatElement(ID.Duration, durationTicks));
  const infoEl = Buffer.concat(element(ID.Info, infoParts));
  const tracksEl = withoutTracks(clearUnusedAlpha(buf, tracksRange, withAlpha), emptied);
  const tagsIndex = copied.findIndex((c) => c.readUInt32BE(0) === ID.Tags);

  // The SeekHead's size does not depend on the positions it holds (8-byte SeekPosition), so the
  // layout can be computed before it is written.
  const seekTargets: number[] = [ID.Info, ID.Tracks, ...(tagsIndex >= 0 ? [ID.Tags] : []), ID.Cues];
  const seekHeadFor = (positions: number[]) =>
    Buffer.concat(
      element(
        ID.SeekHead,
        seekTargets.map((id, i) =>
          Buffer.concat(
            element(ID.Seek, [
              Buffer.concat(element(ID.SeekID, [idBytes(id)])),
              uintElement(ID.SeekPosition, positions[i]!, 8),
            ]),
          ),
        ),
      ),
    );
  const seekHeadSize = seekHeadFor(seekTargets.map(() => 0)).length;

  // Positions are relative to the Segment's data.
  const infoPos = seekHeadSize;
  const tracksPos = infoPos + infoEl.length;
  let rel = tracksPos + tracksEl.length;
  let tagsPos = 0;
  copied.forEach((c, i) => {
    if (i === tagsIndex) tagsPos = rel;
    rel += c.length;
  });

  // CuePoints: each Cluster holding a keyframe of the cue track, at that keyframe's time (see the
  // top of the file). Opus blocks are all keyframes, so audio-only files get one per Cluster.
  const anyKey = clusters.some((cl) => cl.firstKey.has(cueTrack));
  const clusterParts: Buffer[] = [];
  const cuePoints: { time: number; pos: number; track: number }[] = [];
  const clusterIndex: { time: number; pos: number }[] = [];
  for (const [i, cl] of clusters.entries()) {
    const timecodeEl = uintElement(ID.Timecode, cl.timecode);
    const size = timecodeEl.length + cl.size;
    const head = Buffer.concat([idBytes(ID.Cluster), sizeBytes(size)]);
    clusterIndex.push({ time: cl.timecode, pos: rel });
    const keyTime = cl.firstKey.get(cueTrack);
    const soundTime = soundCueTrack === null ? undefined : cl.firstKey.get(soundCueTrack);
    if (keyTime !== undefined) cuePoints.push({ time: Math.max(0, keyTime), pos: rel, track: cueTrack });
    else if (soundTime !== undefined) cuePoints.push({ time: Math.max(0, soundTime), pos: rel, track: soundCueTrack! });
    else if (!anyKey && i === 0) cuePoints.push({ time: cl.timecode, pos: rel, track: cueTrack }); // no key flags at all: keep one

    clusterParts.push(head, timecodeEl);
    for (let r = 0; r < cl.ranges.length; r += 2) clusterParts.push(buf.subarray(cl.ranges[r], cl.ranges[r + 1]));
    rel += head.length + size;
  }
  const cuesPos = rel;
  cuePoints.sort((a, b) => a.time - b.time || a.pos - b.pos);
  const cuesEl = Buffer.concat(
    element(
      ID.Cues,
      cuePoints.map((c) =>
        Buffer.concat(
          element(ID.CuePoint, [
            uintElement(ID.CueTime, c.time),
            Buffer.concat(
              element(ID.CueTrackPositions, [
                uintElement(ID.CueTrack, c.track),
                uintElement(ID.CueClusterPosition, c.pos),
              ]),
            ),
          ]),
        ),
      ),
    ),
  );
  const seekHeadEl = seekHeadFor([infoPos, tracksPos, ...(tagsIndex >= 0 ? [tagsPos] : []), cuesPos]);

  const segmentSize = cuesPos + cuesEl.length;
  const segmentHead = Buffer.concat([idBytes(ID.Segment), sizeBytes(segmentSize, 8)]);
  const ebmlEl = buf.subarray(0, ebmlEnd);
  const segmentDataStart = ebmlEl.length + segmentHead.length;

  const data = Buffer.concat([ebmlEl, segmentHead, seekHeadEl, infoEl, tracksEl, ...copied, ...clusterParts, cuesEl]);

  return {
    data,
    durationMs: durationTicks * ticksToMs,
    cues: clusterIndex
      .sort((a, b) => a.time - b.time || a.pos - b.pos)
      .map((c) => ({ timeMs: c.time * ticksToMs, offset: segmentDataStart + c.pos })),
    hasVideo: video !== undefined,
    hasAudio: audio !== undefined,
  };

  function noteBlock(cluster: ClusterOut, track: number, time: number, blockDuration: number, key: boolean) {
    if (key && !cluster.firstKey.has(track)) cluster.firstKey.set(track, time);
    const s = stats.get(track);
    if (!s) stats.set(track, { first: time, last: time, count: 1, lastDuration: blockDuration });
    else {
      s.first = Math.min(s.first, time);
      if (time >= s.last) {
        s.last = time;
        s.lastDuration = blockDuration;
      }
      s.count++;
    }
  }
}

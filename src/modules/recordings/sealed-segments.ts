/**
 * Sealed recordings: a recording's plaintext, cut into fixed-size segments, each sealed with
 * AES-256-GCM under the recording's own data key, so that a range request reads and opens only
 * the segments it needs, and any changed, missing, reordered or foreign byte is refused.
 *
 * Layout of a sealed recording (`plaintextSize` = n bytes, S = SEGMENT_SIZE):
 *
 *   segment 0 | segment 1 | … | segment k-1        k = segmentCount(n) = max(1, ceil(n / S))
 *   segment i = iv (12, random) | ciphertext (S bytes, the last one 1…S) | tag (16)
 *   sealed segment i starts at i * (S + 28)
 *
 * The additional authenticated data of segment i binds everything the position means:
 *
 *   'confidant/recording/v1' | recording UUID (16 raw bytes) | u32 i | u8 isLast | u64 n
 *
 * so a segment moved to another index, spliced in from another recording, an end cut off
 * (the new last segment is not marked last), or a changed declared size all fail the tag.
 *
 * An empty recording (n = 0) is one sealed segment with an empty plaintext, marked last
 * (28 bytes): even "there is nothing" is authenticated, and an empty blob is refused.
 *
 * Chunks (what the browser uploads during a call, sealed before they touch the disk) are
 * sealed as one piece each: iv | ciphertext | tag, with the AAD
 * 'confidant/recording-chunk/v1' | UUID (16) | u32 seq | u32 length.
 */
import { createCipheriv, createDecipheriv, randomBytes, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { addAbortSignal, Readable } from 'node:stream';
import type { BlobReader } from './blob-store';

/** Plaintext bytes per segment (the last segment may be shorter). */
export const SEGMENT_SIZE = 64 * 1024;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
/** Bytes a sealed segment adds to its plaintext. */
export const SEGMENT_OVERHEAD = IV_BYTES + TAG_BYTES;
/** Bytes of a full sealed segment; segment i starts at i * SEALED_SEGMENT_SIZE. */
export const SEALED_SEGMENT_SIZE = SEGMENT_SIZE + SEGMENT_OVERHEAD;
/** Sealed segments read from the blob per read: 16 × 64 KiB ≈ 1 MiB (measured; see openRangeStream). */
export const READ_BATCH_SEGMENTS = 16;

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
const MAX_SEGMENTS = 0x1_0000_0000; // u32 segment index
const U32_MAX = 0xffff_ffff;

const RECORDING_DOMAIN = Buffer.from('confidant/recording/v1', 'ascii');
const CHUNK_DOMAIN = Buffer.from('confidant/recording-chunk/v1', 'ascii');

/** A sealed recording or chunk failed its integrity check: it must not be served, in whole or part. */
export class TamperError extends Error {
  readonly code = 'recording_tampered';
  constructor(message = 'the recording failed its integrity check') {
    super(message);
    this.name = 'TamperError';
  }
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The 16 raw bytes of a recording's UUID (any case). A malformed id is a caller bug: TypeError. */
export function recordingIdBytes(recordingId: string): Buffer {
  if (typeof recordingId !== 'string' || !UUID_RE.test(recordingId)) throw new TypeError('recordingId must be a UUID');
  return Buffer.from(recordingId.replace(/-/g, ''), 'hex');
}

function checkKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) throw new TypeError('a recording data key is 32 bytes');
}

function checkSize(plaintextSize: number): void {
  if (!Number.isSafeInteger(plaintextSize) || plaintextSize < 0) throw new RangeError('plaintextSize must be a non-negative safe integer');
  if (Math.ceil(plaintextSize / SEGMENT_SIZE) > MAX_SEGMENTS) throw new RangeError('recording too large for its segment index');
}

/** Number of sealed segments for a plaintext of this size (an empty plaintext has one, empty, segment). */
export function segmentCount(plaintextSize: number): number {
  checkSize(plaintextSize);
  return plaintextSize === 0 ? 1 : Math.ceil(plaintextSize / SEGMENT_SIZE);
}

/** Size of the sealed recording for a plaintext of this size. */
export function sealedSize(plaintextSize: number): number {
  return plaintextSize + segmentCount(plaintextSize) * SEGMENT_OVERHEAD;
}

/** Plaintext length of segment `index` of a recording of `plaintextSize` bytes. */
function segmentPlainLength(plaintextSize: number, count: number, index: number): number {
  return index === count - 1 ? plaintextSize - index * SEGMENT_SIZE : SEGMENT_SIZE;
}

/** The AAD of one recording; `setSegment` rewrites the index and last flag in place. */
class SegmentAad {
  readonly buf: Buffer;
  private readonly at: number;
  constructor(recordingId: string, plaintextSize: number) {
    const id = recordingIdBytes(recordingId);
    this.at = RECORDING_DOMAIN.length + id.length;
    this.buf = Buffer.alloc(this.at + 4 + 1 + 8);
    RECORDING_DOMAIN.copy(this.buf, 0);
    id.copy(this.buf, RECORDING_DOMAIN.length);
    this.buf.writeBigUInt64BE(BigInt(plaintextSize), this.at + 5);
  }
  setSegment(index: number, isLast: boolean): Buffer {
    this.buf.writeUInt32BE(index, this.at);
    this.buf[this.at + 4] = isLast ? 1 : 0;
    return this.buf;
  }
}

/** Seals `plain` into `out` at `pos` (iv | ciphertext | tag); returns the position after it. */
function sealInto(key: Buffer, aad: Buffer, iv: Buffer, plain: Buffer, out: Buffer, pos: number): number {
  const cipher: CipherGCM = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  iv.copy(out, pos);
  pos += IV_BYTES;
  const ct = cipher.update(plain);
  ct.copy(out, pos);
  pos += ct.length;
  const rest = cipher.final(); // empty for GCM
  if (rest.length > 0) {
    rest.copy(out, pos);
    pos += rest.length;
  }
  cipher.getAuthTag().copy(out, pos);
  return pos + TAG_BYTES;
}

/**
 * Opens one sealed piece (iv | ciphertext | tag) and verifies its tag. The plaintext is returned
 * only after `final()` accepted the tag; on any failure nothing is returned (TamperError).
 */
function openSealed(key: Buffer, aad: Buffer, sealed: Buffer, what: string): Buffer {
  if (sealed.length < SEGMENT_OVERHEAD) throw new TamperError(`${what} is truncated`);
  const decipher: DecipherGCM = createDecipheriv(ALGORITHM, key, sealed.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plain = decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    plain.fill(0);
    throw new TamperError(`${what} failed its integrity check`);
  }
  return plain;
}

/** Seals a whole recording held in memory. Output size is `sealedSize(plaintext.length)`. */
export function sealRecording(key: Buffer, recordingId: string, plaintext: Buffer): Buffer {
  checkKey(key);
  const size = plaintext.length;
  const count = segmentCount(size);
  const aad = new SegmentAad(recordingId, size);
  const out = Buffer.allocUnsafe(sealedSize(size));
  const ivs = randomBytes(count * IV_BYTES);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const from = i * SEGMENT_SIZE;
    const plain = plaintext.subarray(from, from + segmentPlainLength(size, count, i));
    pos = sealInto(key, aad.setSegment(i, i === count - 1), ivs.subarray(i * IV_BYTES, (i + 1) * IV_BYTES), plain, out, pos);
  }
  if (pos !== out.length) throw new Error('sealRecording: layout mismatch');
  return out;
}

export interface Sealer {
  /** Adds plaintext; returns the sealed bytes that are complete so far (possibly none). */
  push(chunk: Buffer): Buffer[];
  /** Ends the plaintext (its total must equal the declared size); returns the remaining sealed bytes. */
  end(): Buffer[];
}

/**
 * Incremental sealer for a plaintext whose total size is known up front (it is part of every
 * segment's AAD). Concatenating every returned buffer gives exactly what `sealRecording` would
 * (up to the random IVs). Throws RangeError if more or fewer bytes than declared are pushed.
 */
export function createSealer(key: Buffer, recordingId: string, totalSize: number): Sealer {
  checkKey(key);
  const count = segmentCount(totalSize);
  const aad = new SegmentAad(recordingId, totalSize);
  const pending = Buffer.allocUnsafe(SEGMENT_SIZE);
  let pendingLen = 0;
  let index = 0;
  let received = 0;
  let ended = false;

  const sealOne = (plain: Buffer): Buffer => {
    const out = Buffer.allocUnsafe(plain.length + SEGMENT_OVERHEAD);
    sealInto(key, aad.setSegment(index, index === count - 1), randomBytes(IV_BYTES), plain, out, 0);
    index++;
    return out;
  };

  return {
    push(chunk) {
      if (ended) throw new Error('sealer already ended');
      if (received + chunk.length > totalSize) throw new RangeError('more plaintext than the declared size');
      received += chunk.length;
      const out: Buffer[] = [];
      let at = 0;
      // Seal a full segment as soon as one is complete, except the very last one (sealed by end()).
      while (at < chunk.length) {
        const segLen = segmentPlainLength(totalSize, count, index);
        if (pendingLen === 0 && chunk.length - at >= segLen && index < count - 1) {
          out.push(sealOne(chunk.subarray(at, at + segLen)));
          at += segLen;
          continue;
        }
        const take = Math.min(segLen - pendingLen, chunk.length - at);
        chunk.copy(pending, pendingLen, at, at + take);
        pendingLen += take;
        at += take;
        if (pendingLen === segLen && index < count - 1) {
          out.push(sealOne(pending.subarray(0, pendingLen)));
          pendingLen = 0;
        }
      }
      return out;
    },
    end() {
      if (ended) throw new Error('sealer already ended');
      ended = true;
      if (received !== totalSize) throw new RangeError('less plaintext than the declared size');
      const last = sealOne(pending.subarray(0, pendingLen));
      pending.fill(0);
      return [last];
    },
  };
}

export interface RangeStreamOptions {
  /** The recording's data key (32 bytes). It is not copied: keep it intact until the stream closes. */
  key: Buffer;
  recordingId: string;
  /** The declared plaintext size (from the database); it is authenticated by every segment. */
  plaintextSize: number;
  /** The sealed blob. The stream never closes it: the caller does, after the stream's 'close'. */
  reader: BlobReader;
  /** First plaintext byte wanted. */
  start: number;
  /** Last plaintext byte wanted (inclusive), `start <= endInclusive < plaintextSize`. */
  endInclusive: number;
  /** Aborting destroys the stream (with an AbortError, as `stream.addAbortSignal` does). */
  signal?: AbortSignal;
  /** Sealed segments per blob read (default READ_BATCH_SEGMENTS). */
  batchSegments?: number;
}

/**
 * A Readable of the plaintext bytes [start, endInclusive] of a sealed recording. It reads only
 * the sealed segments covering the range, `batchSegments` at a time. While one batch is being
 * decrypted the next one is read (so disk and CPU overlap), and no further: at most one batch
 * is read ahead of what the consumer has asked for, whatever its pace (backpressure).
 *
 * Each segment is decrypted fully and its tag verified before any of its bytes are pushed. A
 * blob whose size is not exactly `sealedSize(plaintextSize)`, a short read or a bad tag
 * destroys the stream with TamperError; what was emitted before came from intact segments.
 *
 * 'close' is emitted only once no blob read is in flight, so the caller may then close the
 * reader and wipe the key.
 */
export function openRangeStream(opts: RangeStreamOptions): Readable {
  checkKey(opts.key);
  checkSize(opts.plaintextSize);
  const { start, endInclusive: end, plaintextSize } = opts;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end >= plaintextSize) {
    throw new RangeError(`range ${start}-${end} is not within 0-${plaintextSize - 1}`);
  }
  const batch = opts.batchSegments ?? READ_BATCH_SEGMENTS;
  if (!Number.isSafeInteger(batch) || batch < 1) throw new RangeError('batchSegments must be a positive integer');
  const stream = new RangeStream(opts, batch);
  if (opts.signal) addAbortSignal(opts.signal, stream);
  return stream;
}

interface PendingRead {
  first: number;
  last: number;
  length: number;
  data: Promise<Buffer>;
}

class RangeStream extends Readable {
  private readonly key: Buffer;
  private readonly reader: BlobReader;
  private readonly size: number;
  private readonly count: number;
  private readonly aad: SegmentAad;
  private readonly start: number;
  private readonly end: number;
  private readonly lastSegment: number;
  private readonly batch: number;
  private nextSegment: number;
  private sizeChecked = false;
  /** The pump is running (cleared synchronously when it stops, never by a later callback). */
  private busy = false;
  /** The last pump started, for _destroy to wait on. */
  private pumping: Promise<void> | null = null;
  /** _read was called while the pump was busy. */
  private wanted = false;
  /** The next batch, read ahead while the current one is decrypted: at most one batch ahead. */
  private ahead: PendingRead | null = null;
  /**
   * Two batch buffers, used in turn, when the reader can read into a buffer: allocating a fresh
   * megabyte per batch costs more (allocation and GC) than the read itself. Safe to reuse because
   * nothing pushed is a view of them (decipher output is always a fresh buffer).
   */
  private readonly buffers: [Buffer | null, Buffer | null] = [null, null];
  private turn = 0;

  constructor(opts: RangeStreamOptions, batch: number) {
    // Segments are pushed whole; one segment is a sensible buffer target.
    super({ highWaterMark: SEGMENT_SIZE });
    this.key = opts.key;
    this.reader = opts.reader;
    this.size = opts.plaintextSize;
    this.count = segmentCount(this.size);
    this.aad = new SegmentAad(opts.recordingId, this.size);
    this.start = opts.start;
    this.end = opts.endInclusive;
    this.nextSegment = Math.floor(this.start / SEGMENT_SIZE);
    this.lastSegment = Math.floor(this.end / SEGMENT_SIZE);
    this.batch = batch;
  }

  override _read(): void {
    if (this.busy) {
      this.wanted = true;
      return;
    }
    this.busy = true;
    this.pumping = this.pump();
  }

  private readAt(first: number): PendingRead {
    const last = Math.min(this.lastSegment, first + this.batch - 1);
    const length = (last - first) * SEALED_SEGMENT_SIZE + segmentPlainLength(this.size, this.count, last) + SEGMENT_OVERHEAD;
    const offset = first * SEALED_SEGMENT_SIZE;
    let data: Promise<Buffer>;
    if (this.reader.readInto) {
      const which = this.turn;
      this.turn ^= 1;
      let buf = this.buffers[which];
      if (!buf || buf.length < length) buf = this.buffers[which] = Buffer.allocUnsafe(Math.min(this.batch, this.lastSegment - first + 1) * SEALED_SEGMENT_SIZE);
      const target = buf.subarray(0, length);
      data = this.reader.readInto(target, offset).then((n) => target.subarray(0, n));
    } else {
      data = this.reader.read(offset, length);
    }
    data.catch(() => undefined); // a read-ahead nobody awaits (the stream was destroyed) must not be an unhandled rejection
    return { first, last, length, data };
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        this.wanted = false;
        if (!this.sizeChecked) {
          const actual = await this.reader.size();
          if (this.destroyed) return;
          if (actual !== sealedSize(this.size)) throw new TamperError('the sealed recording has the wrong size');
          this.sizeChecked = true;
        }
        const cur = this.ahead ?? this.readAt(this.nextSegment);
        this.ahead = null;
        const sealed = await cur.data;
        if (this.destroyed) return;
        if (sealed.length !== cur.length) throw new TamperError('the sealed recording is truncated');
        this.nextSegment = cur.last + 1;
        if (this.nextSegment <= this.lastSegment) this.ahead = this.readAt(this.nextSegment);
        this.openAndPush(cur, sealed);
        if (this.destroyed) return;
        if (this.nextSegment > this.lastSegment) {
          this.push(null);
          return;
        }
        // Go on only if the consumer asked for more while we were busy; otherwise its next _read restarts us.
        if (!this.wanted) return;
      }
    } catch (err) {
      this.destroy(asError(err));
    } finally {
      this.busy = false;
    }
  }

  /** Opens each segment of the batch and pushes its part of the range, only after its tag verified. */
  private openAndPush(cur: PendingRead, sealed: Buffer): void {
    let at = 0;
    for (let i = cur.first; i <= cur.last; i++) {
      const plainLen = segmentPlainLength(this.size, this.count, i);
      const piece = sealed.subarray(at, at + plainLen + SEGMENT_OVERHEAD);
      at += piece.length;
      const plain = openSealed(this.key, this.aad.setSegment(i, i === this.count - 1), piece, `segment ${i}`);
      const segStart = i * SEGMENT_SIZE;
      const from = Math.max(this.start - segStart, 0);
      const to = Math.min(this.end - segStart + 1, plainLen);
      this.push(from === 0 && to === plain.length ? plain : plain.subarray(from, to));
      if (this.destroyed) return;
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Let in-flight reads settle first, so that after 'close' nothing touches the reader or the key.
    const waits: Promise<unknown>[] = [];
    if (this.pumping) waits.push(this.pumping);
    if (this.ahead) waits.push(this.ahead.data);
    this.ahead = null;
    if (waits.length === 0) cb(err);
    else void Promise.allSettled(waits).then(() => cb(err));
  }
}

/** A reader failure (I/O, a missing blob) is passed on as it is: only integrity failures are TamperError. */
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The plaintext bytes [start, endInclusive] as one Buffer (for small ranges). Same checks as openRangeStream. */
export async function readRange(opts: RangeStreamOptions): Promise<Buffer> {
  const stream = openRangeStream(opts);
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function chunkAad(recordingId: string, seq: number, length: number): Buffer {
  if (!Number.isInteger(seq) || seq < 0 || seq > U32_MAX) throw new RangeError('chunk seq must be a u32');
  if (length > U32_MAX) throw new RangeError('chunk too large');
  const id = recordingIdBytes(recordingId);
  const aad = Buffer.alloc(CHUNK_DOMAIN.length + id.length + 8);
  CHUNK_DOMAIN.copy(aad, 0);
  id.copy(aad, CHUNK_DOMAIN.length);
  aad.writeUInt32BE(seq, CHUNK_DOMAIN.length + id.length);
  aad.writeUInt32BE(length, CHUNK_DOMAIN.length + id.length + 4);
  return aad;
}

/** Seals one uploaded chunk: iv | ciphertext | tag (data.length + 28 bytes). */
export function sealChunk(key: Buffer, recordingId: string, seq: number, data: Buffer): Buffer {
  checkKey(key);
  const out = Buffer.allocUnsafe(data.length + SEGMENT_OVERHEAD);
  sealInto(key, chunkAad(recordingId, seq, data.length), randomBytes(IV_BYTES), data, out, 0);
  return out;
}

/** Opens a chunk sealed by `sealChunk` for the same recording and seq; TamperError otherwise. */
export function openChunk(key: Buffer, recordingId: string, seq: number, sealed: Buffer): Buffer {
  checkKey(key);
  if (sealed.length < SEGMENT_OVERHEAD) throw new TamperError(`chunk ${seq} is truncated`);
  return openSealed(key, chunkAad(recordingId, seq, sealed.length - SEGMENT_OVERHEAD), sealed, `chunk ${seq}`);
}

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
import { RecordingBuffers } from './recording-buffers';
import { sharedBuffer, type OpenResult, type SegmentOpener } from './segment-opener';

/** Plaintext bytes per segment (the last segment may be shorter). */
export const SEGMENT_SIZE = 64 * 1024;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
/** Bytes a sealed segment adds to its plaintext. */
export const SEGMENT_OVERHEAD = IV_BYTES + TAG_BYTES;
/** Bytes of a full sealed segment; segment i starts at i * SEALED_SEGMENT_SIZE. */
export const SEALED_SEGMENT_SIZE = SEGMENT_SIZE + SEGMENT_OVERHEAD;
/** Most sealed segments read from the blob per read: 16 × 64 KiB ≈ 1 MiB (measured; 32 gained nothing; see openRangeStream). */
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
  /** Where the segment index (u32) and the last flag (u8) go. */
  readonly at: number;
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

/**
 * Where a range stream is piped, when that is its only consumer and passes bytes on in the order
 * it was given them (an HTTP response on a socket). `writableLength` counts the bytes it has been
 * given and not yet passed on (to the kernel); 'finish' means every byte it was given has been.
 */
export interface RangeStreamSink {
  readonly writableLength: number;
  once(event: 'finish', listener: () => void): unknown;
}

/**
 * What carries a sink's bytes on: an HTTP response's socket. Its 'close' must mean that it holds
 * none of them any more, as a net.Socket's does: it is emitted once the socket's handle has
 * closed, after libuv completed or cancelled every write in flight.
 */
export interface RangeStreamCarrier {
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
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
  /** Most sealed segments per blob read (default READ_BATCH_SEGMENTS). */
  batchSegments?: number;
  /**
   * Opens segments on worker threads (segment-opener.ts); without it they are opened on the
   * calling thread. The bytes served are the same either way.
   */
  opener?: SegmentOpener;
  /**
   * The sink the stream will be piped into, as its only consumer (no other listener may keep what
   * it emits). The stream then reuses the buffers it pushed once the sink has passed them on (see
   * RangeStream.outputBuffer); piped anywhere else, it does not.
   */
  sink?: RangeStreamSink;
  /**
   * With a sink: what carries its bytes on. A stream cut short (destroyed before its sink
   * finished) gives its buffers to the recording's next streams once it has closed and the
   * carrier has closed too; without a carrier they are left to the garbage collector.
   */
  carrier?: RangeStreamCarrier;
}

/**
 * A Readable of the plaintext bytes [start, endInclusive] of a sealed recording. It reads only
 * the sealed segments covering the range, a batch at a time: first the one segment holding
 * `start`, so that the first bytes go out after one small read; then up to `batchSegments`,
 * fewer for a consumer that takes less than that in about a second (a paced player), so that a
 * slow stream does not hold megabytes. While one batch is being read and decrypted the next one
 * is read (so disk and CPU overlap), and no further: at most one batch is read ahead of what the
 * consumer has asked for, whatever its pace (backpressure).
 *
 * Each batch is pushed as one buffer, one socket write rather than one per segment. Each segment
 * is decrypted fully and its tag verified before any of its bytes are written into that buffer,
 * and the buffer is pushed only once every segment in it verified. A blob whose size is not
 * exactly `sealedSize(plaintextSize)`, a short read or a bad tag destroys the stream with
 * TamperError; what was emitted before came from intact segments.
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

const EMPTY_BUFFER = Buffer.alloc(0);

/*
 * Which thread opens a batch. With a segment opener (and a reader with a file descriptor) every
 * batch but the first segment of a range is read and opened on the opener's worker: the main
 * thread, whose event loop serves every request, is left to write to sockets. The first segment
 * is opened here, after one read: a seek waits for it, and should not wait in the worker's queue
 * behind other streams' megabytes. A paced player's batches of one or two segments go to the
 * worker too: with 2,000 of them (bench:replay) the main thread, opening them itself, ran out of
 * time before the worker did.
 */

/** A batch should hold about this much of what its consumer takes per second (see RangeStream.batchAt). */
const BATCH_SECONDS = 1;
/** Slow start: a batch is at most this share of what a stream has been given so far (see batchAt). */
const SLOW_START_SHARE = 4;
/** Recent pushes remembered per stream (time and segments of each), for a stream's pace. */
const RECENT_PUSHES = 32;

/**
 * Free buffers of one size, shared by every range stream. A buffer per request lives as long as
 * the request, long enough to reach V8's old generation, where external memory is freed only by
 * a mark-compact: dozens per gigabyte served when every request had its own.
 */
class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(
    readonly size: number,
    /** Shared memory: the plaintext of batches read and opened on a segment opener's worker. */
    readonly shared: boolean,
    /** Bytes kept free by this pool and its siblings, and at most how many. */
    private readonly kept: { bytes: number; max: number },
  ) {}
  take(): Buffer {
    const buf = this.free.pop();
    if (!buf) return this.shared ? sharedBuffer(this.size) : Buffer.allocUnsafeSlow(this.size);
    this.kept.bytes -= buf.length;
    return buf;
  }
  giveBack(buf: Buffer): void {
    if (buf.length !== this.size || this.kept.bytes + buf.length > this.kept.max) return;
    this.kept.bytes += buf.length;
    this.free.push(buf);
  }
}

/** A pool per batch size (1, 2, 4, … READ_BATCH_SEGMENTS segments), keeping 64 MiB free between them at most. */
function pools(segmentBytes: number, shared: boolean): BufferPool[] {
  const kept = { bytes: 0, max: 64 * 1024 * 1024 };
  const out: BufferPool[] = [];
  for (let n = 1; n <= READ_BATCH_SEGMENTS; n *= 2) out.push(new BufferPool(n * segmentBytes, shared, kept));
  return out;
}
/** Sealed bytes. Never pushed, so reused as soon as a batch has been opened. */
const READ_POOLS = pools(SEALED_SEGMENT_SIZE, false);
/**
 * Plaintext sizes, in shared memory (a segment opener's worker writes into them). Nothing is ever
 * given back to these: `take` allocates. A stream reuses its own buffers (RangeStream.outputBuffer),
 * and gives those it no longer needs to the next streams of the same recording only
 * (RECORDING_BUFFERS). Reuse matters more for shared memory than for ordinary Buffers: V8 (Node 20)
 * does not count a SharedArrayBuffer towards what starts a garbage collection, so one dropped is
 * freed only at a mark-compact something else brings about.
 */
const OUTPUT_POOLS = pools(SEGMENT_SIZE, true);
/** Plaintext buffers kept between streams of one recording, never shared between recordings: 64 MiB at most, 5 s after last use. */
export const RECORDING_BUFFERS = new RecordingBuffers(64 * 1024 * 1024, 5_000);

function poolFor(which: BufferPool[], length: number): BufferPool | null {
  return which.find((p) => length <= p.size) ?? null;
}

interface PendingRead {
  first: number;
  last: number;
  /** Segments the batch was planned for (the last one of a range may have fewer). */
  planned: number;
  length: number;
  data: Promise<Buffer>;
  /** The pooled buffer the read fills: given back once the read settled and the batch was opened. */
  pooled: { buf: Buffer; pool: BufferPool } | null;
  /**
   * Read and opened in one job on a worker (the reader has a file descriptor): the job, and the
   * output buffer it fills with the plaintext bytes [from, to) of the recording. `data` settles
   * only once the job has answered (the file must stay open, and the buffer untouched, until then).
   */
  fused?: { opened: Promise<OpenResult>; out: { buf: Buffer; pool: BufferPool | null }; from: number; to: number };
}

/** An output buffer, and the plaintext bytes pushed in all once it had been pushed. */
interface OutputBuffer {
  buf: Buffer;
  pool: BufferPool;
  pushedThrough: number;
}

/** Output buffers a stream keeps track of at most (others are left to the garbage collector). */
const OUTPUT_BUFFERS_TRACKED = 4;

class RangeStream extends Readable {
  private readonly key: Buffer;
  private readonly reader: BlobReader;
  private readonly size: number;
  private readonly count: number;
  private readonly aad: SegmentAad;
  /** The recording, as RECORDING_BUFFERS knows it (ids are case-insensitive). */
  private readonly recordingKey: string;
  private readonly start: number;
  private readonly end: number;
  private readonly firstSegment: number;
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
  /** Reuse pushed buffers: there is a sink, and the stream is piped into nothing else. */
  private sink: RangeStreamSink | null;
  private readonly opener: SegmentOpener | null;
  /** Plaintext bytes pushed so far. */
  private pushed = 0;
  /** [when, segments] of the last RECENT_PUSHES pushes, oldest first, flattened. */
  private readonly recentPushes: number[] = [];
  /** Output buffers pushed that the sink may not have passed on yet, oldest first. */
  private readonly outstanding: OutputBuffer[] = [];
  /** Output buffers this stream pushed and the sink has passed on: free for its next batches. */
  private readonly spare: OutputBuffer[] = [];
  /** What carries the sink's bytes on, until it closes or the sink finishes (see releaseTornDown). */
  private carrier: RangeStreamCarrier | null = null;
  private carrierClosed = false;
  /** Destroyed, and every read and job it started has settled. */
  private destroySettled = false;
  private readonly onCarrierClose = (): void => {
    this.carrierClosed = true;
    this.carrier = null;
    this.releaseTornDown();
  };

  constructor(opts: RangeStreamOptions, batch: number) {
    // Batches are pushed whole; one segment is a sensible buffer target.
    super({ highWaterMark: SEGMENT_SIZE });
    this.key = opts.key;
    this.reader = opts.reader;
    this.size = opts.plaintextSize;
    this.count = segmentCount(this.size);
    this.aad = new SegmentAad(opts.recordingId, this.size);
    this.recordingKey = opts.recordingId.toLowerCase();
    this.start = opts.start;
    this.end = opts.endInclusive;
    this.firstSegment = Math.floor(this.start / SEGMENT_SIZE);
    this.nextSegment = this.firstSegment;
    this.lastSegment = Math.floor(this.end / SEGMENT_SIZE);
    this.batch = batch;
    this.sink = opts.sink ?? null;
    this.opener = opts.opener ?? null;
    this.sink?.once('finish', () => this.sinkFinished());
    if (this.sink && opts.carrier) {
      this.carrier = opts.carrier;
      this.carrier.once('close', this.onCarrierClose);
    }
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    // Reused buffers are safe only where the sink's accounting covers every consumer.
    if ((destination as unknown) !== this.sink) this.stopReusing();
    return super.pipe(destination, options);
  }

  override _read(): void {
    if (this.busy) {
      this.wanted = true;
      return;
    }
    this.busy = true;
    this.pumping = this.pump();
  }

  /**
   * Segments for the batch starting at `first`: one for the first (the first bytes soon; two if the
   * range starts in the second half of it), and one while the sink still holds bytes it was given
   * (its consumer, not this stream, is behind: whatever is read now would only wait, holding
   * memory). Otherwise what the consumer took in the
   * last BATCH_SECONDS (the segments pushed in that time: a batch is pushed only once the consumer
   * has asked for more), as a power of two up to `batch`: a megabyte for anything faster than a
   * megabyte a second, one or two segments for a player pacing itself at 1 Mbit/s.
   *
   * Not the time the last batch took: the batch read ahead is planned just after a push, and a
   * player's socket takes a burst whenever its buffers have room, so batches a millisecond apart
   * said "fast" of a player that then held a megabyte batch, paused, for eight seconds.
   */
  private batchAt(first: number): number {
    if (first === this.firstSegment) {
      // A range that starts in the second half of a segment gets the next one too: a seek's first
      // push should hold enough to start playing (a segment is half a second at 1 Mbit/s), not the
      // few bytes left of its first segment while the next batch is read.
      const left = SEGMENT_SIZE - (this.start % SEGMENT_SIZE);
      return left < SEGMENT_SIZE / 2 && first < this.lastSegment ? 2 : 1;
    }
    if (this.sink && this.sink.writableLength > 0) return 1;
    // Slow start: a quarter of what the stream has been given so far. A player's socket takes its
    // first megabyte or so at once, whatever its pace (the kernel's buffers at both ends); that is
    // not a reason to read a megabyte at a time (and, on a worker, into a megabyte of memory of its
    // own, held while the player plays it).
    const given = first - this.firstSegment;
    let cap = 1;
    while (cap * 2 <= Math.min(given / SLOW_START_SHARE, this.batch)) cap *= 2;
    const took = this.pushedWithin(performance.now() - BATCH_SECONDS * 1000);
    const fits = (n: number) => n <= took * Math.SQRT2;
    let n = 1;
    while (n < cap && fits(n * 2)) n *= 2;
    return n;
  }

  /** Segments pushed since `since` (performance.now() ms), from the record of recent pushes. */
  private pushedWithin(since: number): number {
    let sum = 0;
    for (let i = this.recentPushes.length - 2; i >= 0 && this.recentPushes[i]! >= since; i -= 2) sum += this.recentPushes[i + 1]!;
    return sum;
  }

  private readAt(first: number): PendingRead {
    const planned = this.batchAt(first);
    const last = Math.min(this.lastSegment, first + planned - 1);
    const length = (last - first) * SEALED_SEGMENT_SIZE + segmentPlainLength(this.size, this.count, last) + SEGMENT_OVERHEAD;
    const offset = first * SEALED_SEGMENT_SIZE;
    let data: Promise<Buffer>;
    let pooled: PendingRead['pooled'] = null;
    if (this.opener && this.reader.fd !== undefined && first !== this.firstSegment) {
      // One job on a worker: it reads the batch from the file and opens it into one of this
      // stream's output buffers. The buffer is chosen now, before the batch in front of it is
      // pushed: one the sink has already passed on, never the one in front.
      const from = Math.max(this.start, first * SEGMENT_SIZE);
      const to = Math.min(this.end + 1, last * SEGMENT_SIZE + segmentPlainLength(this.size, this.count, last));
      const out = this.outputBuffer(planned, to - from);
      const opened = this.opener.open({
        key: this.key,
        aad: this.aad.buf,
        aadAt: this.aad.at,
        read: { fd: this.reader.fd, position: offset, length },
        segments: this.segmentsOf(first, last, from, to),
        output: out.buf,
      });
      // A read-ahead nobody awaits (the stream was destroyed) must not be an unhandled rejection.
      opened.catch(() => undefined);
      data = opened.then(
        () => EMPTY_BUFFER,
        () => EMPTY_BUFFER,
      );
      return { first, last, planned, length, data, pooled: null, fused: { opened, out, from, to } };
    }
    if (this.reader.readInto) {
      // Nothing pushed is a view of a read buffer: segments are opened into output buffers.
      const pool = poolFor(READ_POOLS, planned * SEALED_SEGMENT_SIZE);
      if (pool) pooled = { buf: pool.take(), pool };
      const target = pooled ? pooled.buf.subarray(0, length) : Buffer.allocUnsafe(length);
      data = this.reader.readInto(target, offset).then((n) => target.subarray(0, n));
    } else {
      data = this.reader.read(offset, length);
    }
    data.catch(() => undefined); // a read-ahead nobody awaits (the stream was destroyed) must not be an unhandled rejection
    return { first, last, planned, length, data, pooled };
  }

  /**
   * Gives back the buffer of a read that has settled and whose bytes were opened or never will be.
   * Were a read buffer ever handed out twice, the bytes read into it would fail their tags
   * (TamperError): they could not open under another recording's key.
   */
  private static settled(read: PendingRead): void {
    if (read.pooled) read.pooled.pool.giveBack(read.pooled.buf);
    read.pooled = null;
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
        // The next batch is read while this one is read and opened: the consumer asked for this
        // one, so that is one batch ahead and no more. For the first, small, batch it means the
        // second follows at once, not a turn of a busy event loop later.
        this.ahead = cur.last < this.lastSegment ? this.readAt(cur.last + 1) : null;
        try {
          if (cur.fused) {
            const r = await cur.fused.opened;
            if (this.destroyed) return;
            this.nextSegment = cur.last + 1;
            this.pushOpened(cur, cur.fused.out, r, cur.fused.to - cur.fused.from);
          } else {
            const sealed = await cur.data;
            if (this.destroyed) return;
            if (sealed.length !== cur.length) throw new TamperError('the sealed recording is truncated');
            this.nextSegment = cur.last + 1;
            this.openAndPush(cur, sealed);
          }
        } finally {
          RangeStream.settled(cur); // awaited above, or the await threw
        }
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

  /**
   * Opens each segment of the batch into one output buffer and pushes the batch's part of the range
   * as that one buffer. A segment's bytes are written only after its tag verified, and nothing is
   * pushed unless every segment of the batch verified. (A batch read and opened on a worker is
   * pushed by pushOpened instead.)
   */
  private openAndPush(cur: PendingRead, sealed: Buffer): void {
    const from = Math.max(this.start, cur.first * SEGMENT_SIZE);
    const to = Math.min(this.end + 1, cur.last * SEGMENT_SIZE + segmentPlainLength(this.size, this.count, cur.last));
    const out = this.outputBuffer(cur.planned, to - from);
    let filled = 0;
    let at = 0;
    for (let i = cur.first; i <= cur.last; i++) {
      const plainLen = segmentPlainLength(this.size, this.count, i);
      const piece = sealed.subarray(at, at + plainLen + SEGMENT_OVERHEAD);
      at += piece.length;
      const plain = openSealed(this.key, this.aad.setSegment(i, i === this.count - 1), piece, `segment ${i}`);
      const segStart = i * SEGMENT_SIZE;
      // The decipher's own buffer is garbage at once, so it is collected young (see outputBuffer).
      // fill() with a piece of exactly the gap's length is one memcpy, into shared memory too (as in the worker).
      const wanted = plain.subarray(Math.max(from - segStart, 0), Math.min(to - segStart, plainLen));
      if (wanted.length > 0) out.buf.fill(wanted, filled, filled + wanted.length);
      filled += wanted.length;
    }
    this.pushFilled(cur, out, filled);
  }

  /** [index, isLast, sealedLength, skip, take] for each segment of [first, last], for plaintext bytes [from, to). */
  private segmentsOf(first: number, last: number, from: number, to: number): number[] {
    const segments: number[] = [];
    for (let i = first; i <= last; i++) {
      const plainLen = segmentPlainLength(this.size, this.count, i);
      const segStart = i * SEGMENT_SIZE;
      const skip = Math.max(from - segStart, 0);
      segments.push(i, i === this.count - 1 ? 1 : 0, plainLen + SEGMENT_OVERHEAD, skip, Math.min(to - segStart, plainLen) - skip);
    }
    return segments;
  }

  /** A worker's answer: the batch pushed, or TamperError. */
  private pushOpened(cur: PendingRead, out: { buf: Buffer; pool: BufferPool | null }, r: OpenResult, expected: number): void {
    if ('failed' in r) throw new TamperError(`segment ${r.failed} failed its integrity check`);
    if ('truncated' in r || r.filled !== expected) throw new TamperError('the sealed recording is truncated');
    this.pushFilled(cur, out, r.filled);
  }

  private pushFilled(cur: PendingRead, out: { buf: Buffer; pool: BufferPool | null }, filled: number): void {
    this.pushed += filled;
    this.recentPushes.push(performance.now(), cur.last - cur.first + 1);
    if (this.recentPushes.length > RECENT_PUSHES * 2) this.recentPushes.splice(0, 2);
    if (out.pool && this.sink) {
      this.outstanding.push({ buf: out.buf, pool: out.pool, pushedThrough: this.pushed });
      if (this.outstanding.length > OUTPUT_BUFFERS_TRACKED) this.outstanding.shift();
    }
    this.push(out.buf.length === filled ? out.buf : out.buf.subarray(0, filled));
  }

  /**
   * A buffer for `size` bytes of a batch planned for `planned` segments. Without a sink, a fresh
   * one. With a sink, one from a pool, and the buffers pushed are reused:
   *
   * by this stream, once the sink has passed each on. What is still queued (here and in the
   * sink) is the last bytes pushed, in order, so a buffer followed by at least as many pushed
   * bytes as are queued is referenced by no one any more. Spare buffers this stream no longer
   * wants (it slowed down to smaller batches, or has more than it tracks), and all of them once
   * it has finished (sinkFinished), go to the next streams of the same recording, never another's
   * (RECORDING_BUFFERS). A new buffer is one of those, or a fresh one.
   *
   * A buffer this stream lost track of, or still holds when the sink closes without finishing,
   * is left to the garbage collector.
   */
  private outputBuffer(planned: number, size: number): { buf: Buffer; pool: BufferPool | null } {
    const pool = this.sink ? poolFor(OUTPUT_POOLS, planned * SEGMENT_SIZE) : null;
    if (!pool) return { buf: this.opener ? sharedBuffer(size) : Buffer.allocUnsafeSlow(size), pool: null };
    const queued = this.readableLength + this.sink!.writableLength;
    while (this.outstanding.length > 0 && this.pushed - this.outstanding[0]!.pushedThrough >= queued) this.spare.push(this.outstanding.shift()!);
    // A stream that slowed down to smaller batches lets its bigger buffers go.
    for (let i = this.spare.length - 1; i >= 0; i--) {
      if (this.spare[i]!.pool.size > pool.size) RECORDING_BUFFERS.giveBack(this.recordingKey, this.spare.splice(i, 1)[0]!.buf);
    }
    const mine = this.spare.findIndex((s) => s.pool === pool);
    if (mine >= 0) return this.spare.splice(mine, 1)[0]!;
    if (this.spare.length > OUTPUT_BUFFERS_TRACKED) RECORDING_BUFFERS.giveBack(this.recordingKey, this.spare.shift()!.buf);
    return { buf: RECORDING_BUFFERS.take(this.recordingKey, pool.size) ?? pool.take(), pool };
  }

  private stopReusing(): void {
    this.sink = null;
    this.outstanding.length = 0;
    this.spare.length = 0;
    this.carrier?.off('close', this.onCarrierClose);
    this.carrier = null;
  }

  /**
   * A stream cut short: once it is destroyed with nothing of its own in flight, and the carrier
   * has closed (so no socket or write request holds a byte it pushed, and nothing will read the
   * bytes still queued in it), its buffers go to the recording's next streams, as a finished
   * stream's do. A buffer a job was filling is in neither list and is left to the collector.
   */
  private releaseTornDown(): void {
    if (!this.carrierClosed || !this.destroySettled || !this.sink) return;
    this.giveBackAll();
    this.stopReusing();
  }

  /** Every buffer this stream tracks, to this recording's next streams (only once none is referenced). */
  private giveBackAll(): void {
    for (const b of this.outstanding) RECORDING_BUFFERS.giveBack(this.recordingKey, b.buf);
    for (const b of this.spare) RECORDING_BUFFERS.giveBack(this.recordingKey, b.buf);
  }

  /**
   * The sink has passed on every byte it was given. If this stream ended (everything it pushed
   * went into the sink), none of its buffers is referenced any more: they go to the next streams
   * of this recording, and only of this recording (RECORDING_BUFFERS: a buffer that held one
   * patient's recording cannot end up in another's replay, whatever a future change to the
   * accounting above gets wrong). A buffer a job is still filling is in neither list. Otherwise
   * (the sink was ended early, the stream was piped elsewhere) they go to the garbage collector.
   */
  private sinkFinished(): void {
    if (this.sink && this.readableEnded) this.giveBackAll();
    this.stopReusing();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Let in-flight reads settle first, so that after 'close' nothing touches the reader or the key.
    const waits: Promise<unknown>[] = [];
    if (this.pumping) waits.push(this.pumping);
    const ahead = this.ahead;
    this.ahead = null;
    if (ahead) waits.push(ahead.data.finally(() => RangeStream.settled(ahead)));
    const done = () => {
      this.destroySettled = true;
      this.releaseTornDown();
      cb(err);
    };
    if (waits.length === 0) done();
    else void Promise.allSettled(waits).then(done);
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

import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLocalBlobStore, type BlobReader, type BlobStore } from './blob-store';
import {
  createSealer,
  openChunk,
  openRangeStream,
  readRange,
  RECORDING_BUFFERS,
  SEALED_SEGMENT_SIZE,
  sealChunk,
  sealedSize,
  sealRecording,
  segmentCount,
  SEGMENT_OVERHEAD,
  SEGMENT_SIZE,
  TamperError,
  type RangeStreamOptions,
} from './sealed-segments';

const S = SEGMENT_SIZE;
const SIZES = [0, 1, S - 1, S, S + 1, Math.floor(5.5 * S)];
/** One random pool; plaintexts are prefixes of it (cheap to make, all different per offset). */
const POOL = randomBytes(7 * S);

interface MemReaderOptions {
  readInto?: boolean;
  delayMs?: number;
  /** Lie about the size (to test short reads behind a correct-looking size). */
  reportSize?: number;
}

/** An in-memory BlobReader that counts what was read. */
function memReader(data: Buffer, opts: MemReaderOptions = {}) {
  const calls: { offset: number; length: number }[] = [];
  let closed = false;
  const wait = () => (opts.delayMs ? new Promise((r) => setTimeout(r, opts.delayMs)) : Promise.resolve());
  const reader: BlobReader & { calls: typeof calls; closed: () => boolean } = {
    calls,
    closed: () => closed,
    size: async () => opts.reportSize ?? data.length,
    read: async (offset, length) => {
      if (closed) throw new Error('read after close');
      calls.push({ offset, length });
      await wait();
      return Buffer.from(data.subarray(offset, offset + length));
    },
    close: async () => {
      closed = true;
    },
  };
  if (opts.readInto) {
    reader.readInto = async (target, offset) => {
      if (closed) throw new Error('read after close');
      calls.push({ offset, length: target.length });
      await wait();
      return data.copy(target, 0, offset, Math.min(data.length, offset + target.length));
    };
  }
  return reader;
}

/** Reads a range, collecting what was emitted before any error. */
function collect(opts: RangeStreamOptions): Promise<{ data: Buffer; error: unknown }> {
  return drain(openRangeStream(opts));
}

/** What a stream emitted before any error, and the error. */
/** Lets a paused stream give one chunk, then pauses it again; null at its end. */
function nextChunk(stream: Readable): Promise<Buffer | null> {
  return new Promise<Buffer | null>((resolve) => {
    const onData = (b: Buffer) => {
      stream.off('end', onEnd);
      stream.pause();
      resolve(b);
    };
    const onEnd = () => {
      stream.off('data', onData);
      resolve(null);
    };
    stream.once('data', onData);
    stream.once('end', onEnd);
    stream.resume();
  });
}

async function drain(stream: Readable): Promise<{ data: Buffer; error: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const part of stream) parts.push(part as Buffer);
    return { data: Buffer.concat(parts), error: null };
  } catch (error) {
    return { data: Buffer.concat(parts), error };
  }
}

/**
 * A sink like an HTTP response on a slow socket: it queues what it is given (writableLength) and
 * copies each chunk only when its write completes, after a delay, as the kernel would take it.
 * A buffer the stream reused too early would arrive here with other bytes in it.
 */
function slowSink(opts: { delayMs: number; jitter?: () => number; sometimesAtOnce?: () => boolean }) {
  const parts: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      // Sometimes taken at once, as a socket with room does (the stream then reads bigger batches).
      if (opts.sometimesAtOnce?.()) {
        parts.push(Buffer.from(chunk));
        cb();
        return;
      }
      setTimeout(
        () => {
          parts.push(Buffer.from(chunk));
          cb();
        },
        opts.delayMs + (opts.jitter?.() ?? 0),
      );
    },
  });
  return { sink, parts };
}

/** Pipes `stream` (opened with this sink) into a slow sink; what the sink took in, and the stream's error. */
async function throughSink(stream: Readable, opts: Parameters<typeof slowSink>[0], made = slowSink(opts)): Promise<{ data: Buffer; error: unknown }> {
  let error: unknown = null;
  stream.once('error', (e) => (error = e));
  stream.pipe(made.sink);
  await new Promise<void>((resolve) => {
    made.sink.once('finish', () => resolve());
    stream.once('close', () => setTimeout(resolve, 50));
  });
  return { data: Buffer.concat(made.parts), error };
}

function sealed(size: number, id = randomUUID(), key = randomBytes(32)) {
  const plain = size <= POOL.length ? POOL.subarray(0, size) : randomBytes(size);
  return { id, key, plain, sealed: sealRecording(key, id, plain) };
}

/** Interesting (start, end) pairs for a plaintext of `n` bytes. */
function edgeRanges(n: number): [number, number][] {
  const out: [number, number][] = [
    [0, 0],
    [0, n - 1],
    [n - 1, n - 1],
    [Math.floor(n / 2), n - 1],
    [0, Math.floor(n / 2)],
  ];
  for (let b = S; b < n; b += S) {
    out.push([b - 1, b - 1], [b, b], [b - 1, b], [b, n - 1], [0, b - 1], [0, b], [b - 1, Math.min(b + S, n - 1)], [b - S, b - 1]);
    if (b + 1 < n) out.push([b + 1, b + 1]);
  }
  return out.filter(([s, e]) => s >= 0 && e < n && s <= e);
}

describe('layout', () => {
  it('sizes: an empty recording is one empty sealed segment; the last segment is never empty otherwise', () => {
    expect(segmentCount(0)).toBe(1);
    expect(sealedSize(0)).toBe(SEGMENT_OVERHEAD);
    expect(segmentCount(1)).toBe(1);
    expect(segmentCount(S)).toBe(1);
    expect(segmentCount(S + 1)).toBe(2);
    expect(sealedSize(S)).toBe(SEALED_SEGMENT_SIZE);
    expect(sealedSize(5.5 * S)).toBe(5.5 * S + 6 * SEGMENT_OVERHEAD);
    for (const n of SIZES) expect(sealRecording(randomBytes(32), randomUUID(), POOL.subarray(0, n)).length).toBe(sealedSize(n));
    expect(() => segmentCount(-1)).toThrow(RangeError);
    expect(() => segmentCount(1.5)).toThrow(RangeError);
  });

  it('refuses a malformed key or recording id', () => {
    expect(() => sealRecording(randomBytes(16), randomUUID(), Buffer.alloc(1))).toThrow(TypeError);
    expect(() => sealRecording(randomBytes(32), 'not-a-uuid', Buffer.alloc(1))).toThrow(TypeError);
    expect(() => sealChunk(randomBytes(32), '../x', 0, Buffer.alloc(1))).toThrow(TypeError);
  });

  it('IVs are random: sealing twice gives different bytes', () => {
    const key = randomBytes(32);
    const id = randomUUID();
    const a = sealRecording(key, id, POOL.subarray(0, 2 * S));
    const b = sealRecording(key, id, POOL.subarray(0, 2 * S));
    expect(a.equals(b)).toBe(false);
    expect(a.subarray(0, 12).equals(a.subarray(SEALED_SEGMENT_SIZE, SEALED_SEGMENT_SIZE + 12))).toBe(false);
  });

  it('the recording id is case-insensitive (same 16 bytes)', async () => {
    const { id, key, plain, sealed: blob } = sealed(S + 3);
    const out = await readRange({ key, recordingId: id.toUpperCase(), plaintextSize: plain.length, reader: memReader(blob), start: 0, endInclusive: plain.length - 1 });
    expect(out.equals(plain)).toBe(true);
  });
});

describe('round trips and ranges', () => {
  for (const n of SIZES.filter((x) => x > 0)) {
    it(`size ${n}: every edge range, with and without readInto, several batch sizes`, async () => {
      const { id, key, plain, sealed: blob } = sealed(n);
      for (const [start, end] of edgeRanges(n)) {
        for (const readInto of [false, true]) {
          for (const batchSegments of [1, 2, 16]) {
            const reader = memReader(blob, { readInto });
            const out = await readRange({ key, recordingId: id, plaintextSize: n, reader, start, endInclusive: end, batchSegments });
            expect(out.length, `${start}-${end}`).toBe(end - start + 1);
            expect(out.equals(plain.subarray(start, end + 1)), `${start}-${end}`).toBe(true);
            // Only the covering segments are read.
            const firstSeg = Math.floor(start / S);
            const lastSeg = Math.floor(end / S);
            const lowest = Math.min(...reader.calls.map((c) => c.offset));
            const highest = Math.max(...reader.calls.map((c) => c.offset + c.length));
            expect(lowest).toBe(firstSeg * SEALED_SEGMENT_SIZE);
            expect(highest).toBeLessThanOrEqual(Math.min(blob.length, (lastSeg + 1) * SEALED_SEGMENT_SIZE));
          }
        }
      }
    });
  }

  it('size 0: sealed as one authenticated empty segment; no byte range exists', () => {
    const { id, key, sealed: blob } = sealed(0);
    expect(blob.length).toBe(SEGMENT_OVERHEAD);
    expect(() => openRangeStream({ key, recordingId: id, plaintextSize: 0, reader: memReader(blob), start: 0, endInclusive: 0 })).toThrow(RangeError);
  });

  it('refuses ranges outside the recording', () => {
    const { id, key, sealed: blob } = sealed(100);
    const base = { key, recordingId: id, plaintextSize: 100, reader: memReader(blob) };
    for (const [start, end] of [
      [-1, 5],
      [5, 4],
      [0, 100],
      [100, 100],
      [0.5, 3],
      [0, Number.NaN],
    ] as [number, number][]) {
      expect(() => openRangeStream({ ...base, start, endInclusive: end })).toThrow(RangeError);
    }
    expect(() => openRangeStream({ ...base, start: 0, endInclusive: 1, batchSegments: 0 })).toThrow(RangeError);
  });

  it('property: random sizes, ranges, batch sizes and readers', async () => {
    const key = randomBytes(32);
    const id = randomUUID();
    const blobs = new Map<number, Buffer>();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 * S + 17 }).chain((n) =>
          fc.record({
            n: fc.constant(n),
            a: fc.integer({ min: 0, max: n - 1 }),
            b: fc.integer({ min: 0, max: n - 1 }),
            batch: fc.integer({ min: 1, max: 8 }),
            readInto: fc.boolean(),
          }),
        ),
        async ({ n, a, b, batch, readInto }) => {
          let blob = blobs.get(n);
          if (!blob) blobs.set(n, (blob = sealRecording(key, id, POOL.subarray(0, n))));
          const [start, end] = a <= b ? [a, b] : [b, a];
          const out = await readRange({ key, recordingId: id, plaintextSize: n, reader: memReader(blob, { readInto }), start, endInclusive: end, batchSegments: batch });
          expect(out.equals(POOL.subarray(start, end + 1))).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('with a sink: pushed buffers are reused only once passed on (slow sinks, several streams at once, in rounds)', async () => {
    // Long enough for whole batches: the slow start reaches 16 segments once 64 were given.
    const n = 160 * S + 777;
    const { id, key, plain, sealed: blob } = sealed(n);
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const batches = new Set<number>();
    for (let round = 0; round < 6; round++) {
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          const a = Math.floor(rand() * n);
          const b = Math.floor(rand() * n);
          const [start, end] = a <= b ? [a, b] : [b, a];
          const made = slowSink({ delayMs: 0, jitter: () => Math.floor(rand() * 3), sometimesAtOnce: () => rand() < 0.5 });
          const reader = memReader(blob, { readInto: true });
          const stream = openRangeStream({ key, recordingId: id, plaintextSize: n, reader, start, endInclusive: end, sink: made.sink });
          const { data, error } = await throughSink(stream, { delayMs: 0 }, made);
          expect(error).toBeNull();
          expect(data.equals(plain.subarray(start, end + 1)), `${start}-${end}`).toBe(true);
          for (const c of reader.calls) batches.add(Math.round(c.length / SEALED_SEGMENT_SIZE));
        }),
      );
    }
    // Small batches and whole ones were read (and pushed through pooled buffers of their sizes).
    expect(batches.has(1) && batches.has(2) && batches.has(16)).toBe(true);
  });

  it("a finished stream's buffers go to the same recording's next streams only; a stream cut short gives none", async () => {
    RECORDING_BUFFERS.clear();
    const n = 20 * S + 123;
    const a = sealed(n);
    const b = sealed(n);
    const run = async (fx: ReturnType<typeof sealed>, cut: 'destroy' | 'end the sink' | null = null) => {
      const made = slowSink({ delayMs: 1 });
      const stream = openRangeStream({ key: fx.key, recordingId: fx.id, plaintextSize: n, reader: memReader(fx.sealed, { readInto: true }), start: 0, endInclusive: n - 1, sink: made.sink });
      const buffers = new Set<ArrayBufferLike>();
      const onData = (c: Buffer) => {
        buffers.add(c.buffer);
        if (cut === 'destroy') stream.destroy();
        if (cut === 'end the sink' && buffers.size === 1) {
          // The sink is ended early (say, by an error handler): it finishes while the stream,
          // paused, still holds bytes it pushed.
          setImmediate(() => {
            stream.off('data', onData);
            stream.unpipe(made.sink);
            stream.pause();
            made.sink.end();
            made.sink.once('finish', () => setTimeout(() => stream.destroy(), 20));
          });
        }
      };
      stream.on('data', onData);
      const { data, error } = await throughSink(stream, { delayMs: 1 }, made);
      return { data, error, buffers };
    };
    const a1 = await run(a);
    expect(a1.error).toBeNull();
    expect(a1.data.equals(a.plain)).toBe(true);
    expect(RECORDING_BUFFERS.stats().of(a.id)).toBeGreaterThan(0);
    const b1 = await run(b);
    expect(b1.data.equals(b.plain)).toBe(true);
    expect([...b1.buffers].filter((x) => a1.buffers.has(x))).toEqual([]);
    // The id is case-insensitive: the same recording asked for in capitals still reuses them.
    const a2 = await run({ ...a, id: a.id.toUpperCase() as typeof a.id });
    expect(a2.data.equals(a.plain)).toBe(true);
    expect([...a2.buffers].some((x) => a1.buffers.has(x))).toBe(true);
    expect([...a2.buffers].filter((x) => b1.buffers.has(x))).toEqual([]);

    for (const how of ['destroy', 'end the sink'] as const) {
      RECORDING_BUFFERS.clear();
      const cut = await run(a, how);
      expect(cut.data.length, how).toBeLessThan(n);
      await new Promise((r) => setTimeout(r, 20));
      expect(RECORDING_BUFFERS.stats().bytes, how).toBe(0);
    }
  });

  it('a stream cut short gives its buffers back to its recording only once it has closed and its carrier (the socket) has closed', async () => {
    const n = 20 * S + 5;
    const fx = sealed(n);
    for (const order of ['stream first', 'carrier first'] as const) {
      RECORDING_BUFFERS.clear();
      const carrier = new EventEmitter();
      const made = slowSink({ delayMs: 2 });
      const stream = openRangeStream({ key: fx.key, recordingId: fx.id, plaintextSize: n, reader: memReader(fx.sealed, { readInto: true }), start: 0, endInclusive: n - 1, sink: made.sink, carrier });
      stream.pipe(made.sink);
      await new Promise<void>((resolve) => stream.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 10));
      const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
      if (order === 'carrier first') carrier.emit('close');
      stream.destroy();
      await closed;
      await new Promise((r) => setTimeout(r, 10));
      if (order === 'stream first') {
        expect(RECORDING_BUFFERS.stats().bytes, order).toBe(0);
        carrier.emit('close');
      }
      expect(RECORDING_BUFFERS.stats().of(fx.id), order).toBeGreaterThan(0);
      expect(RECORDING_BUFFERS.stats().bytes, order).toBe(RECORDING_BUFFERS.stats().of(fx.id));
      expect(carrier.listenerCount('close'), order).toBe(0);
    }
    // A stream that finishes lets go of its carrier: nothing waits on a keep-alive socket.
    RECORDING_BUFFERS.clear();
    const carrier = new EventEmitter();
    const made = slowSink({ delayMs: 0 });
    const stream = openRangeStream({ key: fx.key, recordingId: fx.id, plaintextSize: n, reader: memReader(fx.sealed, { readInto: true }), start: 0, endInclusive: n - 1, sink: made.sink, carrier });
    const { data } = await throughSink(stream, { delayMs: 0 }, made);
    expect(data.equals(fx.plain)).toBe(true);
    expect(carrier.listenerCount('close')).toBe(0);
    RECORDING_BUFFERS.clear();
  });

  it('works from the local blob store (readInto path) too', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'confidant-sealed-'));
    try {
      const store = createLocalBlobStore(dir);
      const { id, key, plain, sealed: blob } = sealed(Math.floor(5.5 * S));
      await store.put(`recordings/${id}`, blob);
      const reader = await store.open(`recordings/${id}`);
      for (const [start, end] of edgeRanges(plain.length)) {
        const out = await readRange({ key, recordingId: id, plaintextSize: plain.length, reader, start, endInclusive: end, batchSegments: 2 });
        expect(out.equals(plain.subarray(start, end + 1))).toBe(true);
      }
      await reader.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('createSealer', () => {
  it('property: any chunking gives a recording that opens to the same plaintext', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 4 * S + 5 }), fc.array(fc.integer({ min: 1, max: 2 * S + 3 }), { maxLength: 12 }), async (n, cuts) => {
        const key = randomBytes(32);
        const id = randomUUID();
        const plain = POOL.subarray(0, n);
        const sealer = createSealer(key, id, n);
        const out: Buffer[] = [];
        let at = 0;
        for (const c of cuts) {
          if (at >= n) break;
          out.push(...sealer.push(plain.subarray(at, Math.min(n, at + c))));
          at = Math.min(n, at + c);
        }
        if (at < n) out.push(...sealer.push(plain.subarray(at)));
        out.push(...sealer.end());
        const blob = Buffer.concat(out);
        expect(blob.length).toBe(sealedSize(n));
        if (n > 0) {
          const back = await readRange({ key, recordingId: id, plaintextSize: n, reader: memReader(blob), start: 0, endInclusive: n - 1 });
          expect(back.equals(plain)).toBe(true);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('refuses more or less plaintext than declared', () => {
    const s1 = createSealer(randomBytes(32), randomUUID(), 10);
    expect(() => s1.push(Buffer.alloc(11))).toThrow(RangeError);
    const s2 = createSealer(randomBytes(32), randomUUID(), 10);
    s2.push(Buffer.alloc(9));
    expect(() => s2.end()).toThrow(RangeError);
  });
});

describe('tampering', () => {
  const n = Math.floor(5.5 * S);
  const count = segmentCount(n);

  /** Offsets of interest in sealed segment i: iv, ciphertext and tag, first/middle/last bytes. */
  function positions(i: number): number[] {
    const base = i * SEALED_SEGMENT_SIZE;
    const plainLen = i === count - 1 ? n - i * S : S;
    const ctEnd = base + 12 + plainLen; // first tag byte
    return [base, base + 5, base + 11, base + 12, base + 12 + Math.floor(plainLen / 2), ctEnd - 1, ctEnd, ctEnd + 15];
  }

  it('a flipped byte anywhere (iv, ciphertext, tag) fails its segment, and nothing of that segment is emitted', async () => {
    const { id, key, plain, sealed: blob } = sealed(n);
    for (let i = 0; i < count; i++) {
      for (const pos of positions(i)) {
        const bad = Buffer.from(blob);
        bad[pos]! ^= 0x01;
        for (const batchSegments of [1, 3, 16]) {
          const { data, error } = await collect({ key, recordingId: id, plaintextSize: n, reader: memReader(bad, { readInto: true }), start: 0, endInclusive: n - 1, batchSegments });
          expect(error, `segment ${i} byte ${pos}`).toBeInstanceOf(TamperError);
          expect((error as TamperError).code).toBe('recording_tampered');
          // Only whole, earlier, intact segments came out.
          expect(data.length).toBeLessThanOrEqual(i * S);
          expect(data.length % S).toBe(0);
          expect(data.equals(plain.subarray(0, data.length))).toBe(true);
        }
        // A range inside the damaged segment emits nothing at all.
        const inside = i * S + 1;
        const r = await collect({ key, recordingId: id, plaintextSize: n, reader: memReader(bad), start: inside, endInclusive: inside + 1 });
        expect(r.error).toBeInstanceOf(TamperError);
        expect(r.data.length).toBe(0);
      }
    }
  });

  it('property: any flipped bit is refused with no plaintext of the damaged segment', async () => {
    const { id, key, plain, sealed: blob } = sealed(n);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: blob.length - 1 }), fc.integer({ min: 0, max: 7 }), async (pos, bit) => {
        const bad = Buffer.from(blob);
        bad[pos]! ^= 1 << bit;
        const seg = Math.floor(pos / SEALED_SEGMENT_SIZE);
        const { data, error } = await collect({ key, recordingId: id, plaintextSize: n, reader: memReader(bad, { readInto: true }), start: 0, endInclusive: n - 1 });
        expect(error).toBeInstanceOf(TamperError);
        expect(data.length).toBeLessThanOrEqual(seg * S);
        expect(data.equals(plain.subarray(0, data.length))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('a damaged segment does not stop ranges that do not need it (only what is read is opened)', async () => {
    const { id, key, plain, sealed: blob } = sealed(n);
    const bad = Buffer.from(blob);
    bad[3 * SEALED_SEGMENT_SIZE + 100]! ^= 0xff;
    const out = await readRange({ key, recordingId: id, plaintextSize: n, reader: memReader(bad), start: 10, endInclusive: 3 * S - 1 });
    expect(out.equals(plain.subarray(10, 3 * S))).toBe(true);
  });

  it('truncation by one byte or by a whole segment is refused, whatever range is asked for', async () => {
    const { id, key, sealed: blob } = sealed(n);
    for (const cut of [blob.subarray(0, blob.length - 1), blob.subarray(0, (count - 1) * SEALED_SEGMENT_SIZE), blob.subarray(0, 0)]) {
      for (const [start, end] of [
        [0, 0],
        [0, n - 1],
        [n - 1, n - 1],
      ] as [number, number][]) {
        const { data, error } = await collect({ key, recordingId: id, plaintextSize: n, reader: memReader(cut), start, endInclusive: end });
        expect(error).toBeInstanceOf(TamperError);
        expect(data.length).toBe(0);
      }
    }
    // Appending is refused too.
    const longer = Buffer.concat([blob, Buffer.alloc(1)]);
    expect((await collect({ key, recordingId: id, plaintextSize: n, reader: memReader(longer), start: 0, endInclusive: 0 })).error).toBeInstanceOf(TamperError);
  });

  it('a reader that claims the right size but returns short reads is refused', async () => {
    const { id, key, sealed: blob } = sealed(n);
    const cut = blob.subarray(0, blob.length - 1);
    for (const readInto of [false, true]) {
      const { data, error } = await collect({ key, recordingId: id, plaintextSize: n, reader: memReader(cut, { reportSize: blob.length, readInto }), start: (count - 1) * S, endInclusive: n - 1 });
      expect(error).toBeInstanceOf(TamperError);
      expect(data.length).toBe(0);
    }
  });

  it('dropping the last segment and declaring the shorter size is refused (the new last segment is not marked last)', async () => {
    const { id, key, sealed: blob } = sealed(n);
    const cut = blob.subarray(0, (count - 1) * SEALED_SEGMENT_SIZE);
    const shorter = (count - 1) * S;
    expect(cut.length).toBe(sealedSize(shorter));
    const { data, error } = await collect({ key, recordingId: id, plaintextSize: shorter, reader: memReader(cut), start: shorter - 1, endInclusive: shorter - 1 });
    expect(error).toBeInstanceOf(TamperError);
    expect(data.length).toBe(0);
    // Even the first segment: the declared total is authenticated by every segment.
    expect((await collect({ key, recordingId: id, plaintextSize: shorter, reader: memReader(cut), start: 0, endInclusive: 0 })).error).toBeInstanceOf(TamperError);
  });

  it('swapping two segments within a file is refused', async () => {
    const { id, key, sealed: blob } = sealed(n);
    const swapped = Buffer.from(blob);
    blob.copy(swapped, 0, SEALED_SEGMENT_SIZE, 2 * SEALED_SEGMENT_SIZE);
    blob.copy(swapped, SEALED_SEGMENT_SIZE, 0, SEALED_SEGMENT_SIZE);
    for (const start of [0, S]) {
      const { data, error } = await collect({ key, recordingId: id, plaintextSize: n, reader: memReader(swapped), start, endInclusive: start + 10 });
      expect(error).toBeInstanceOf(TamperError);
      expect(data.length).toBe(0);
    }
  });

  it("swapping two recordings' files is refused (own keys, and even a shared key)", async () => {
    const a = sealed(n);
    const b = sealed(n);
    // A's row (id, key, size) pointing at B's file, and the reverse.
    for (const [row, file] of [
      [a, b],
      [b, a],
    ] as const) {
      const r = await collect({ key: row.key, recordingId: row.id, plaintextSize: n, reader: memReader(file.sealed), start: 0, endInclusive: n - 1 });
      expect(r.error).toBeInstanceOf(TamperError);
      expect(r.data.length).toBe(0);
    }
    // Same key, other recording id: the id in the AAD refuses it.
    const c = sealed(n, randomUUID(), a.key);
    const r = await collect({ key: a.key, recordingId: a.id, plaintextSize: n, reader: memReader(c.sealed), start: 0, endInclusive: n - 1 });
    expect(r.error).toBeInstanceOf(TamperError);
    expect(r.data.length).toBe(0);
    // Splicing one segment from a recording with the same key and size at the same index.
    const spliced = Buffer.from(a.sealed);
    c.sealed.copy(spliced, 2 * SEALED_SEGMENT_SIZE, 2 * SEALED_SEGMENT_SIZE, 3 * SEALED_SEGMENT_SIZE);
    const s = await collect({ key: a.key, recordingId: a.id, plaintextSize: n, reader: memReader(spliced), start: 0, endInclusive: n - 1 });
    expect(s.error).toBeInstanceOf(TamperError);
    expect(s.data.length).toBeLessThanOrEqual(2 * S);
    expect(s.data.equals(a.plain.subarray(0, s.data.length))).toBe(true);
  });

  it('a wrong declared plaintext size is refused', async () => {
    const { id, key, sealed: blob } = sealed(n);
    for (const declared of [n - 1, n + 1, n - S, n + S, 1]) {
      // The blob is re-read as if its size matched the declared one, so only the AAD can catch it.
      const reader = memReader(blob, { reportSize: sealedSize(declared) });
      const { data, error } = await collect({ key, recordingId: id, plaintextSize: declared, reader, start: 0, endInclusive: Math.min(declared, n) - 1 });
      expect(error, `declared ${declared}`).toBeInstanceOf(TamperError);
      expect(data.length).toBe(0);
    }
  });

  it('a wrong key is refused', async () => {
    const { id, sealed: blob } = sealed(n);
    const { data, error } = await collect({ key: randomBytes(32), recordingId: id, plaintextSize: n, reader: memReader(blob), start: 0, endInclusive: n - 1 });
    expect(error).toBeInstanceOf(TamperError);
    expect(data.length).toBe(0);
  });

  it('an empty recording is authenticated too (its segment is sealed, not absent)', () => {
    const key = randomBytes(32);
    const id = randomUUID();
    const a = sealRecording(key, id, Buffer.alloc(0));
    const b = sealRecording(key, id, Buffer.alloc(0));
    expect(a.length).toBe(SEGMENT_OVERHEAD);
    expect(a.equals(b)).toBe(false); // random IV
  });
});

describe('stream behaviour', () => {
  const n = 40 * S;
  const fixture = sealed(n);

  it('honours backpressure: reads at most one batch ahead of what was consumed', async () => {
    const reader = memReader(fixture.sealed, { readInto: true });
    const stream = openRangeStream({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader, start: 0, endInclusive: n - 1, batchSegments: 4 });
    const first = await new Promise<Buffer>((resolve) => stream.once('readable', () => resolve(stream.read(S) as Buffer)));
    expect(first.equals(fixture.plain.subarray(0, S))).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    // The first batch (being consumed) plus at most one read ahead, maybe one more started by the read above.
    expect(reader.calls.length).toBeLessThanOrEqual(3);
    const rest: Buffer[] = [];
    stream.on('data', (b: Buffer) => rest.push(b));
    await new Promise((r) => stream.once('end', r));
    expect(Buffer.concat([first, ...rest]).equals(fixture.plain)).toBe(true);
    // One segment first, then seven more one at a time, four of 2 and the other 24 in batches of 4
    // (slow start: a batch is at most a quarter of what was already given).
    expect(reader.calls.map((c) => c.length / SEALED_SEGMENT_SIZE)).toEqual([...Array(8).fill(1), ...Array(4).fill(2), ...Array(6).fill(4)]);
  });

  it('the first segment is read alone and pushed before the next batch has been read', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const inner = memReader(fixture.sealed, { readInto: true });
    const reader: BlobReader = {
      size: inner.size,
      read: inner.read,
      close: inner.close,
      // Every read after the first waits for the gate.
      readInto: async (target, offset) => {
        if (inner.calls.length > 0) await gate;
        return inner.readInto!(target, offset);
      },
    };
    const start = 3 * S + 100;
    const stream = openRangeStream({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader, start, endInclusive: n - 1, batchSegments: 16 });
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
    expect(first.equals(fixture.plain.subarray(start, 4 * S))).toBe(true);
    expect(inner.calls).toEqual([{ offset: 3 * SEALED_SEGMENT_SIZE, length: SEALED_SEGMENT_SIZE }]);
    release();
    const rest: Buffer[] = [];
    stream.on('data', (b: Buffer) => rest.push(b));
    await new Promise((r) => stream.once('end', r));
    expect(Buffer.concat([first, ...rest]).equals(fixture.plain.subarray(start))).toBe(true);
    // Then batches doubling (slow start: at most a quarter of what was already given), each pushed as one buffer.
    const after = [...Array(7).fill(1), ...Array(4).fill(2), ...Array(4).fill(4), 5];
    expect(inner.calls.map((c) => c.length / SEALED_SEGMENT_SIZE)).toEqual([1, ...after]);
    expect(rest.map((b) => b.length / S)).toEqual(after);
  });

  it('a range starting in the second half of a segment gets the next segment in its first push too', async () => {
    for (const [start, firstSegments] of [
      [5 * S + S / 2 + 1, 2], // less than half a segment left: that and the next one
      [5 * S + S / 2 - 1, 1], // more than half left: that one alone
      [n - 100, 1], // the last segment: nothing after it
    ] as const) {
      const reader = memReader(fixture.sealed, { readInto: true });
      const stream = openRangeStream({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader, start, endInclusive: n - 1, batchSegments: 16 });
      const { data, error } = await drain(stream);
      expect(error).toBeNull();
      expect(data.equals(fixture.plain.subarray(start))).toBe(true);
      expect(reader.calls[0], `start ${start}`).toEqual({ offset: Math.floor(start / S) * SEALED_SEGMENT_SIZE, length: firstSegments * SEALED_SEGMENT_SIZE });
    }
  });

  it('a consumer taking little per second gets small batches, a fast one whole batches again', async () => {
    let clock = 0;
    const now = vi.spyOn(performance, 'now').mockImplementation(() => clock);
    // Long enough for whole batches once fast (the slow start reaches 16 segments once 64 were given).
    const long = sealed(100 * S);
    try {
      const reader = memReader(long.sealed, { readInto: true });
      const stream = openRangeStream({ key: long.key, recordingId: long.id, plaintextSize: 100 * S, reader, start: 0, endInclusive: 100 * S - 1, batchSegments: 16 });
      stream.pause();
      const next = () => nextChunk(stream);
      const parts: Buffer[] = [];
      // Slow: ten seconds per chunk (on the stream's clock).
      for (let i = 0; i < 6; i++) {
        parts.push((await next())!);
        clock += 10_000;
      }
      const slowReads = reader.calls.length;
      // Then fast.
      for (let b = await next(); b; b = await next()) parts.push(b);
      expect(Buffer.concat(parts).equals(long.plain)).toBe(true);
      const segs = reader.calls.map((c) => c.length / SEALED_SEGMENT_SIZE);
      // One segment first, and one again (slow start); then small while slow, whole again once fast.
      expect(segs.slice(0, 2)).toEqual([1, 1]);
      expect(Math.max(...segs.slice(3, slowReads))).toBeLessThanOrEqual(2);
      expect(segs.slice(slowReads)).toContain(16);
    } finally {
      now.mockRestore();
    }
  });

  it("a player's pace is what it took in the last second, also for the batch read ahead just after a push", async () => {
    let clock = 0;
    const now = vi.spyOn(performance, 'now').mockImplementation(() => clock);
    try {
      const reader = memReader(fixture.sealed, { readInto: true });
      const stream = openRangeStream({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader, start: 0, endInclusive: n - 1, batchSegments: 16 });
      stream.pause();
      const next = () => nextChunk(stream);
      const parts: Buffer[] = [];
      // A burst, as a player's socket takes at first: 20 segments at once (the slow start reaches 4).
      while (parts.reduce((a, b) => a + b.length, 0) < 20 * S) parts.push((await next())!);
      const burstReads = reader.calls.length;
      // Then one chunk every 1.5 s: a batch is read ahead right after each push, a millisecond after
      // it on any clock; the pace is still one push in the last second, not "a batch a millisecond".
      for (let b = await next(); b; b = await next()) {
        parts.push(b);
        clock += 1500;
      }
      expect(Buffer.concat(parts).equals(fixture.plain)).toBe(true);
      const segs = reader.calls.map((c) => c.length / SEALED_SEGMENT_SIZE);
      expect(Math.max(...segs.slice(0, burstReads))).toBe(4);
      // The batch in flight when the pace changed, then one segment at a time.
      expect(segs.length - burstReads).toBeGreaterThan(10);
      expect(segs.slice(burstReads + 1).every((x) => x === 1)).toBe(true);
    } finally {
      now.mockRestore();
    }
  });

  it('a stream piped into something other than its sink does not reuse its buffers', async () => {
    // A sink that never reports anything queued: reuse by it would hand the slow sink overwritten buffers.
    const liar = { writableLength: 0, once: () => undefined };
    const stream = openRangeStream({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader: memReader(fixture.sealed, { readInto: true }), start: 5, endInclusive: n - 5, sink: liar });
    const { data, error } = await throughSink(stream, { delayMs: 1 });
    expect(error).toBeNull();
    expect(data.equals(fixture.plain.subarray(5, n - 4))).toBe(true);
  });

  it('damage in a later batch cuts the stream short after the intact batches, none of its own batch', async () => {
    const bad = Buffer.from(fixture.sealed);
    bad[20 * SEALED_SEGMENT_SIZE + 500]! ^= 0x20; // segment 20
    for (const withSink of [false, true]) {
      const made = slowSink({ delayMs: 1 });
      const base = { key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader: memReader(bad, { readInto: true }), start: 0, endInclusive: n - 1, batchSegments: 16 };
      const stream = openRangeStream(withSink ? { ...base, sink: made.sink } : base);
      const { data, error } = withSink ? await throughSink(stream, { delayMs: 1 }, made) : await drain(stream);
      expect(error).toBeInstanceOf(TamperError);
      // Read by a fast consumer: segment 0, then 1–7 one at a time, 8–15 two at a time, 16–19
      // (slow start: a quarter of what was given), then 20–23 (refused). A slow sink gets smaller batches.
      if (withSink) expect(data.length % S === 0 && data.length <= 20 * S).toBe(true);
      else expect(data.length).toBe(20 * S);
      expect(data.equals(fixture.plain.subarray(0, data.length))).toBe(true);
    }
  });

  it('an abort signal destroys the stream; close waits for the read in flight', async () => {
    const reader = memReader(fixture.sealed, { delayMs: 30 });
    const abort = new AbortController();
    const stream = openRangeStream({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader, start: 0, endInclusive: n - 1, signal: abort.signal, batchSegments: 2 });
    const errors: Error[] = [];
    stream.on('error', (e) => errors.push(e));
    let got = 0;
    stream.on('data', (b: Buffer) => {
      got += b.length;
      if (got >= 2 * S) abort.abort();
    });
    const t0 = Date.now();
    await new Promise((r) => stream.once('close', r));
    const readsAtClose = reader.calls.length;
    await reader.close();
    await new Promise((r) => setTimeout(r, 80));
    expect(errors[0]?.name).toBe('AbortError');
    expect(got).toBeLessThan(n);
    expect(reader.calls.length).toBe(readsAtClose); // nothing touched the reader after close
    expect(Date.now() - t0).toBeGreaterThanOrEqual(30);
  });

  it('an already-aborted signal never reads', async () => {
    const reader = memReader(fixture.sealed);
    const stream = openRangeStream({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader, start: 0, endInclusive: 10, signal: AbortSignal.abort() });
    const err = await new Promise<Error>((r) => stream.once('error', r));
    expect(err.name).toBe('AbortError');
    expect(reader.calls.length).toBe(0);
  });

  it('reader errors pass through as they are (not TamperError)', async () => {
    const reader: BlobReader = { size: async () => fixture.sealed.length, read: async () => Promise.reject(new Error('disk on fire')), close: async () => {} };
    const { error } = await collect({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader, start: 0, endInclusive: 5 });
    expect((error as Error).message).toBe('disk on fire');
    expect(error).not.toBeInstanceOf(TamperError);
  });

  it('destroying mid-stream stops reading', async () => {
    const reader = memReader(fixture.sealed, { readInto: true });
    const stream: Readable = openRangeStream({ key: fixture.key, recordingId: fixture.id, plaintextSize: n, reader, start: 0, endInclusive: n - 1, batchSegments: 1 });
    await new Promise((r) => stream.once('readable', r));
    stream.destroy();
    await new Promise((r) => stream.once('close', r));
    const calls = reader.calls.length;
    await new Promise((r) => setTimeout(r, 20));
    expect(reader.calls.length).toBe(calls);
    expect(calls).toBeLessThan(40);
  });
});

describe('chunks', () => {
  it('round trip, including an empty chunk', () => {
    const key = randomBytes(32);
    const id = randomUUID();
    for (const len of [0, 1, 1000, 3 * S + 7]) {
      const data = POOL.subarray(0, len);
      const s = sealChunk(key, id, 7, data);
      expect(s.length).toBe(len + SEGMENT_OVERHEAD);
      expect(openChunk(key, id, 7, s).equals(data)).toBe(true);
    }
  });

  it('refuses a wrong seq, recording, key, a flipped byte or a truncation', () => {
    const key = randomBytes(32);
    const id = randomUUID();
    const data = POOL.subarray(0, 5000);
    const s = sealChunk(key, id, 3, data);
    expect(() => openChunk(key, id, 4, s)).toThrow(TamperError);
    expect(() => openChunk(key, randomUUID(), 3, s)).toThrow(TamperError);
    expect(() => openChunk(randomBytes(32), id, 3, s)).toThrow(TamperError);
    expect(() => openChunk(key, id, 3, s.subarray(0, s.length - 1))).toThrow(TamperError);
    expect(() => openChunk(key, id, 3, s.subarray(0, 10))).toThrow(TamperError);
    expect(() => openChunk(key, id, 3, Buffer.concat([s, Buffer.alloc(1)]))).toThrow(TamperError);
    for (const pos of [0, 11, 12, 2500, s.length - 17, s.length - 16, s.length - 1]) {
      const bad = Buffer.from(s);
      bad[pos]! ^= 0x80;
      expect(() => openChunk(key, id, 3, bad)).toThrow(TamperError);
    }
    // A chunk is not a recording segment (different domain), nor the reverse.
    const asRecording = sealRecording(key, id, data);
    expect(() => openChunk(key, id, 0, asRecording)).toThrow(TamperError);
  });

  it('refuses a seq outside u32', () => {
    expect(() => sealChunk(randomBytes(32), randomUUID(), -1, Buffer.alloc(1))).toThrow(RangeError);
    expect(() => sealChunk(randomBytes(32), randomUUID(), 2 ** 32, Buffer.alloc(1))).toThrow(RangeError);
  });
});

describe('throughput sanity', () => {
  let dir: string;
  let store: BlobStore;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'confidant-sealed-tp-'));
    store = createLocalBlobStore(dir);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('streams an 8 MiB recording from the blob store intact', async () => {
    const size = 8 * 1024 * 1024 + 123;
    const plain = randomBytes(size);
    const key = randomBytes(32);
    const id = randomUUID();
    await store.put(`recordings/${id}`, sealRecording(key, id, plain));
    const reader = await store.open(`recordings/${id}`);
    const out = await readRange({ key, recordingId: id, plaintextSize: size, reader, start: 0, endInclusive: size - 1 });
    await reader.close();
    expect(out.equals(plain)).toBe(true);
  });
});

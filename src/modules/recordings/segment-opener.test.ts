import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, open, rm, truncate } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBlobStore, type BlobStore } from './blob-store';
import { SegmentOpener, sharedBuffer } from './segment-opener';
import { openRangeStream, recordingIdBytes, SEALED_SEGMENT_SIZE, sealRecording, SEGMENT_SIZE, TamperError } from './sealed-segments';

// Replays read and open their big batches on a worker thread (segment-opener.ts). These tests
// hold that path to what the in-process path guarantees: the same bytes, every tag checked before
// a byte of its segment is given out, damage and truncation refused, and a dead worker an error.

const S = SEGMENT_SIZE;

let dir: string;
let store: BlobStore;
let opener: SegmentOpener;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'confidant-opener-'));
  store = createLocalBlobStore(dir);
  opener = new SegmentOpener(2);
});
afterAll(async () => {
  await opener.close();
  await rm(dir, { recursive: true, force: true });
});

/** Counts the jobs an opener was given. */
function counting(o: SegmentOpener) {
  let jobs = 0;
  const sizes: number[] = [];
  const counted = Object.create(o) as SegmentOpener & { jobs: () => number; sizes: number[] };
  counted.open = (job) => {
    jobs++;
    sizes.push(job.segments.length / 5);
    return o.open(job);
  };
  counted.jobs = () => jobs;
  counted.sizes = sizes;
  return counted;
}

async function stored(size: number) {
  const id = randomUUID();
  const key = randomBytes(32);
  const plain = randomBytes(size);
  const blob = sealRecording(key, id, plain);
  await store.put(`recordings/${id}`, blob);
  return { id, key, plain, blob, file: path.join(dir, 'recordings', id) };
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

/** A sink that takes its chunks after a delay, copying each only then (a reused buffer would show). */
async function throughSlowSink(make: (sink: Writable) => Readable): Promise<{ data: Buffer; error: unknown }> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      setTimeout(() => {
        parts.push(Buffer.from(chunk));
        cb();
      }, Math.random() < 0.5 ? 0 : 2);
    },
  });
  const stream = make(sink);
  let error: unknown = null;
  stream.once('error', (e) => (error = e));
  stream.pipe(sink);
  await new Promise<void>((resolve) => {
    sink.once('finish', () => resolve());
    stream.once('close', () => setTimeout(resolve, 50));
  });
  return { data: Buffer.concat(parts), error };
}

describe('replays opened on a worker', () => {
  it('gives the same bytes as the recording, for ranges of every shape, with and without a sink', async () => {
    const n = 70 * S + 4321;
    const fx = await stored(n);
    const o = counting(opener);
    const ranges: [number, number][] = [
      [0, n - 1],
      [1, n - 2],
      [S - 1, 40 * S],
      [3 * S + 100, n - 1],
      [n - S - 5, n - 1],
      [17, 17],
    ];
    for (let i = 0; i < 10; i++) {
      const a = Math.floor(Math.random() * n);
      const b = Math.floor(Math.random() * n);
      ranges.push(a <= b ? [a, b] : [b, a]);
    }
    await Promise.all(
      ranges.map(async ([start, end]) => {
        const reader = await store.open(`recordings/${fx.id}`);
        try {
          const base = { key: fx.key, recordingId: fx.id, plaintextSize: n, reader, start, endInclusive: end, opener: o };
          const plainRead = await drain(openRangeStream(base));
          expect(plainRead.error).toBeNull();
          expect(plainRead.data.equals(fx.plain.subarray(start, end + 1)), `${start}-${end}`).toBe(true);
          const sunk = await throughSlowSink((sink) => openRangeStream({ ...base, sink }));
          expect(sunk.error).toBeNull();
          expect(sunk.data.equals(fx.plain.subarray(start, end + 1)), `${start}-${end} through a sink`).toBe(true);
        } finally {
          await reader.close();
        }
      }),
    );
    // The long ranges went through the worker.
    expect(o.jobs()).toBeGreaterThan(10);
  });

  it('refuses a flipped byte: the stream ends with TamperError, with nothing of the damaged batch', async () => {
    const n = 64 * S;
    const fx = await stored(n);
    const handle = await open(fx.file, 'r+');
    const at = 40 * SEALED_SEGMENT_SIZE + 777; // segment 40, inside an 8-segment batch (40–47)
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0]! ^= 0x01;
    await handle.write(byte, 0, 1, at);
    await handle.close();
    const o = counting(opener);
    const reader = await store.open(`recordings/${fx.id}`);
    const { data, error } = await drain(openRangeStream({ key: fx.key, recordingId: fx.id, plaintextSize: n, reader, start: 0, endInclusive: n - 1, opener: o }));
    await reader.close();
    expect(error).toBeInstanceOf(TamperError);
    // Segment 0 in process; on the worker 1–7 one at a time, 8–15 two, 16–31 four, 32–39 (slow
    // start: a batch is at most a quarter of what was given); 40–47 refused whole.
    expect(data.length).toBe(40 * S);
    expect(data.equals(fx.plain.subarray(0, 40 * S))).toBe(true);
    expect(o.sizes.slice(0, 17)).toEqual([...Array(7).fill(1), ...Array(4).fill(2), ...Array(4).fill(4), 8, 8]);
  });

  it('refuses a file that shrinks after it was opened (the worker reads short)', async () => {
    const n = 48 * S;
    const fx = await stored(n);
    const reader = await store.open(`recordings/${fx.id}`);
    const stream = openRangeStream({ key: fx.key, recordingId: fx.id, plaintextSize: n, reader, start: 0, endInclusive: n - 1, opener });
    // Take the first segment, then cut the file inside the later batches (every batch after the first goes to the worker).
    stream.pause();
    const first = await new Promise<Buffer>((resolve) => stream.once('readable', () => resolve(stream.read(S) as Buffer)));
    await truncate(fx.file, 34 * SEALED_SEGMENT_SIZE);
    const rest = await drain(stream);
    await reader.close();
    expect(rest.error).toBeInstanceOf(TamperError);
    const got = Buffer.concat([first, rest.data]);
    // Segments 0–31 were still there; the worker's read of 32–47 came up short.
    expect(got.length).toBe(32 * S);
    expect(got.equals(fx.plain.subarray(0, got.length))).toBe(true);
  });

  it('fails the stream, rather than hanging it, when the worker goes away', async () => {
    const n = 64 * S;
    const fx = await stored(n);
    const own = new SegmentOpener(1);
    const reader = await store.open(`recordings/${fx.id}`);
    const stream = openRangeStream({ key: fx.key, recordingId: fx.id, plaintextSize: n, reader, start: 0, endInclusive: n - 1, opener: own });
    // Take the first segment (opened in process); every later batch is the worker's.
    stream.pause();
    await new Promise<void>((resolve) => stream.once('readable', () => resolve()));
    stream.read(S);
    await own.close();
    const { error } = await drain(stream);
    await reader.close();
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(TamperError);
  });

  it('answers a job with exactly the plaintext asked for, and only into shared memory', async () => {
    const n = 8 * S;
    const fx = await stored(n);
    const reader = await store.open(`recordings/${fx.id}`);
    try {
      await expect(
        opener.open({ key: fx.key, aad: Buffer.alloc(1), aadAt: 0, read: { fd: reader.fd!, position: 0, length: 1 }, segments: [], output: Buffer.alloc(8) }),
      ).rejects.toThrow(/shared memory/);
      // A wrong key: the first segment fails its tag, and nothing is written.
      const out = sharedBuffer(S);
      const r = await opener.open({
        key: randomBytes(32),
        aad: Buffer.alloc(64),
        aadAt: 0,
        read: { fd: reader.fd!, position: 0, length: SEALED_SEGMENT_SIZE },
        segments: [0, 0, SEALED_SEGMENT_SIZE, 0, S],
        output: out,
      });
      expect(r).toEqual({ failed: 0 });
      expect(out.equals(Buffer.alloc(S))).toBe(true);
      // The right key and AAD: exactly the bytes asked for, and a job asking for bytes past a
      // segment's end is refused whole (never a short or repeated copy).
      const domain = Buffer.from('confidant/recording/v1', 'ascii');
      const size = Buffer.alloc(8);
      size.writeBigUInt64BE(BigInt(n));
      const aad = Buffer.concat([domain, recordingIdBytes(fx.id), Buffer.alloc(5), size]);
      const job = (skip: number, take: number) => ({
        key: fx.key,
        aad,
        aadAt: domain.length + 16,
        read: { fd: reader.fd!, position: SEALED_SEGMENT_SIZE, length: SEALED_SEGMENT_SIZE },
        segments: [1, 0, SEALED_SEGMENT_SIZE, skip, take],
        output: out,
      });
      expect(await opener.open(job(100, S - 100))).toEqual({ filled: S - 100 });
      expect(out.subarray(0, S - 100).equals(fx.plain.subarray(S + 100, 2 * S))).toBe(true);
      out.fill(0);
      await expect(opener.open(job(100, S))).rejects.toThrow(/asked of/);
      expect(out.equals(Buffer.alloc(S))).toBe(true);
    } finally {
      await reader.close();
    }
  });
});

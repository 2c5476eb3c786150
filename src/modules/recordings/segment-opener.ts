import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Reads and opens sealed segments on worker threads (open-segments.worker.mjs), so that a
 * replay's file reads, its AES-GCM work and the garbage that work makes (the decipher allocates
 * its output for every segment) stay off the main thread, whose event loop serves every request.
 * On this kind of machine every hop through libuv's thread pool (one per file read) cost the main
 * thread more than the read itself; a job here is one hop for a whole batch.
 *
 * A job names the open file, where the batch's sealed bytes are in it, which plaintext bytes of
 * each segment are wanted, and where they go: a buffer in shared memory that belongs to one
 * replay stream, which does not touch it until the job has answered. (Answering with a buffer
 * made by the worker and moved to the main thread made the main thread's garbage collector run
 * mark-compacts back to back.) Workers keep nothing between jobs but a read buffer of
 * ciphertext: the key travels with each job (transferred, then wiped by the worker).
 */
export interface OpenJob {
  key: Buffer;
  /** The recording's AAD; the worker writes each segment's index and last flag at `aadAt`. */
  aad: Buffer;
  aadAt: number;
  /** The sealed bytes: `length` bytes at `position` of this open file, kept open by the caller until the job answers. */
  read: { fd: number; position: number; length: number };
  /** Flat: [index, isLast (0/1), sealedLength, skip, take] per segment, in file order. */
  segments: number[];
  /** Where the plaintext goes (SharedArrayBuffer-backed, at least the sum of the takes). */
  output: Buffer;
}

/**
 * `filled`: plaintext bytes written; `failed`: the index of a segment whose tag did not verify;
 * `truncated`: the file held fewer bytes than asked for.
 */
export type OpenResult = { filled: number } | { failed: number } | { truncated: true };

export const isShared = (b: Buffer) => b.buffer instanceof SharedArrayBuffer;

/** A Buffer over shared memory, as the opener's jobs need for their output. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

interface Pending {
  resolve: (r: OpenResult) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

const WORKER_URL = new URL('./open-segments.worker.mjs', import.meta.url);

export class SegmentOpener {
  private readonly slots: (Slot | null)[];
  private ids = 0;
  private closed = false;

  constructor(workers = Math.max(1, Math.min(4, availableParallelism() - 1))) {
    this.slots = Array.from({ length: workers }, () => null);
  }

  open(job: OpenJob): Promise<OpenResult> {
    if (this.closed) return Promise.reject(new Error('segment opener: closed'));
    if (!isShared(job.output)) return Promise.reject(new Error('segment opener: the output must be shared memory'));
    const slot = this.pick();
    const id = ++this.ids;
    const key = new Uint8Array(job.key.length);
    key.set(job.key);
    const aad = new Uint8Array(job.aad.length);
    aad.set(job.aad);
    return new Promise<OpenResult>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      slot.worker.postMessage(
        {
          id,
          key,
          aad,
          aadAt: job.aadAt,
          read: job.read,
          segments: job.segments,
          output: job.output.buffer,
          outputOffset: job.output.byteOffset,
        },
        [key.buffer, aad.buffer],
      );
    });
  }

  /** Stops the workers for good; jobs in flight and later ones are refused. (A worker that dies otherwise is replaced.) */
  async close(): Promise<void> {
    this.closed = true;
    const slots = [...this.slots];
    this.slots.fill(null);
    await Promise.all(slots.map((s) => s?.worker.terminate()));
  }

  /** The worker with the fewest jobs in flight, started if need be. */
  private pick(): Slot {
    let best = -1;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (!s) return (this.slots[i] = this.start(i));
      if (best < 0 || s.pending.size < this.slots[best]!.pending.size) best = i;
    }
    return this.slots[best]!;
  }

  private start(i: number): Slot {
    const worker = new Worker(WORKER_URL);
    const slot: Slot = { worker, pending: new Map() };
    worker.unref();
    const fail = (err: Error) => {
      if (this.slots[i] === slot) this.slots[i] = null;
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on('message', (m: { id: number; filled?: number; failed?: number; truncated?: boolean; error?: string }) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.error !== undefined) p.reject(new Error(`segment opener: ${m.error}`));
      else if (m.failed !== undefined) p.resolve({ failed: m.failed });
      else if (m.truncated) p.resolve({ truncated: true });
      else if (typeof m.filled === 'number') p.resolve({ filled: m.filled });
      else p.reject(new Error('segment opener: malformed answer'));
    });
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => fail(new Error(`segment opener: worker exited (${code})`)));
    return slot;
  }
}

let shared: SegmentOpener | undefined;
/** The process's opener (workers start on first use and never keep the process alive when idle). */
export function sharedOpener(): SegmentOpener {
  return (shared ??= new SegmentOpener());
}
